#!/usr/bin/env bash
# Side-by-side benchmarks on this machine, in one run: mosquitto, a bare mochi broker
# (cmd/mochi-bare), a single Switchboard node, and a 3-node Switchboard cluster with a
# router, Redis and a 3-server ZooKeeper ensemble (directed messages, and pub/sub with each
# publisher on another node than its subscriber). Every figure is the median of several
# runs of `switchboard bench`; the table, the machine, the exact commands, the profiles of
# the directed path and the date go into docs/BENCHMARKS.md (between the bench.sh markers;
# the rest of that file is kept).
#
#   scripts/bench.sh                              # the full run, about 10 minutes
#   BENCH_RUNS=1 BENCH_SECONDS=2 scripts/bench.sh # a quick check of the script itself
#
# Everything it starts listens on 127.0.0.1 only and is stopped when it exits (trap EXIT).
# Every wait is bounded, every benchmark command runs under `timeout`, and the whole run
# gives up after BENCH_TIMEOUT seconds.
#
# Environment: BENCH_RUNS (3), BENCH_SECONDS (5: one throughput run), BENCH_CONNECTIONS
# (5000: one connection storm), BENCH_TIMEOUT (1500), BENCH_DOC (docs/BENCHMARKS.md; empty
# to write no doc), BENCH_KEEP=1 keeps the work directory (logs, results, profiles).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
secs=${BENCH_SECONDS:-5}
lat_secs=$((secs * 2))
conns=${BENCH_CONNECTIONS:-5000}
doc=${BENCH_DOC-docs/BENCHMARKS.md}
give_up_at=$(($(date +%s) + ${BENCH_TIMEOUT:-1500}))
# Connections come from many loopback addresses: a node limits new connections per source
# address (a policy for the Internet, not a capacity), and a storm from one address would
# measure that limit.
sources=127.0.0.2-127.0.0.101

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
bin=$work/bin
logs=$work/logs
results=$work/results.json
mkdir -p "$bin" "$logs"
: >"$results"
: >"$work/commands.txt"

script_name=bench
# shellcheck source=lib/procs.sh
source scripts/lib/procs.sh # (the script runs in the repository root)

# bench LABEL SYSTEM ARGS...: one `switchboard bench` run, its JSON result appended to
# $results and kept alone in $last; $last_ok is 1 when it passed, 0 when it failed (it
# then counts in $failed_runs). The first run of each label and system records its
# command line.
failed_runs=0
last=$work/last.json
bench() {
	local label=$1 system=$2
	shift 2
	check_time
	if ! grep -q "^$label $system " "$work/commands.txt"; then
		echo "$label $system switchboard bench $*" >>"$work/commands.txt"
	fi
	log "$label on $system: switchboard bench $*"
	last_ok=1
	timeout 180 "$bin/switchboard" bench "$@" --json --progress never \
		--label "$label" --system "$system" >"$last" 2>>"$logs/bench.err" || last_ok=0
	cat "$last" >>"$results"
	if [ "$last_ok" = 0 ]; then
		log "$label on $system failed (see $logs/bench.err)"
		failed_runs=$((failed_runs + 1))
	fi
}

# cross_received LABEL: how many distinct messages the cluster run in $last received;
# empty when it left no result (it could not run at all).
cross_received() {
	"$bin/switchboard" bench report --median "$1|cluster|completeness.received" "$last" 2>/dev/null || true
}

# pubsub_rows SYSTEM ADDR: the pub/sub rows for one broker.
pubsub_rows() {
	local system=$1 addr=$2 r
	for r in $(seq 1 "$runs"); do
		bench pubsub-q0 "$system" pubsub --mqtt "$addr" --pairs 8 --qos 0 --duration "${secs}s"
		bench pubsub-q1 "$system" pubsub --mqtt "$addr" --pairs 8 --qos 1 --duration "${secs}s"
		bench pubsub-q1-lat "$system" pubsub --mqtt "$addr" --pairs 8 --qos 1 --rate 1000 --duration "${lat_secs}s"
	done
}

# ------------------------------------------------------------------------------------------
log "installing mosquitto, ZooKeeper and Redis from Debian's packages if missing"
SWITCHBOARD_INSTALL_BENCH=1 bash internal/backends/install.sh
log "building"
go build -o "$bin/switchboard" ./cmd/switchboard
go build -o "$bin/mochi-bare" ./cmd/mochi-bare
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Flags that depend on the version. The router serves its API without tokens. Nodes admit
# anonymous clients (no password check at connect, as mosquitto and bare mochi are run
# here), and an ACL lets every client use the pub/sub benchmark's topics (anonymous
# clients may otherwise read only their own inbox).
# (The help is read whole first: under pipefail, `cmd -h | grep -q` fails at random when
# grep exits before cmd has written everything and cmd dies of SIGPIPE.)
router_help=$("$bin/switchboard" router -h 2>&1 || true)
node_help=$("$bin/switchboard" node -h 2>&1 || true)
router_auth=()
if grep -q -- '-no-auth' <<<"$router_help"; then
	router_auth=(--no-auth)
fi
node_auth=()
if grep -q -- '-allow-anonymous' <<<"$node_help"; then
	node_auth=(--allow-anonymous)
	if grep -q -- '-auth-file' <<<"$node_help"; then
		echo '{"acl": [{"topic": "bench/#", "access": "readwrite"}]}' >"$work/auth.json"
		node_auth+=(--auth-file "$work/auth.json")
	fi
fi

# --- mosquitto -----------------------------------------------------------------------------
start_mosquitto() {
	freeport
	mosq_port=$port
	cat >"$work/mosquitto.conf" <<EOF
listener $mosq_port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
EOF
	start mosquitto mosquitto -c "$work/mosquitto.conf"
	mosq_pid=$started
	wait_port "$mosq_port"
}
start_mosquitto
pubsub_rows mosquitto "127.0.0.1:$mosq_port"
stop "$mosq_pid"
for r in $(seq 1 "$runs"); do
	start_mosquitto
	bench connect mosquitto connect --mqtt "127.0.0.1:$mosq_port" --connections "$conns" --pid "$mosq_pid" --source-ips "$sources"
	stop "$mosq_pid"
done

# --- bare mochi ----------------------------------------------------------------------------
start_mochi() {
	freeport
	mochi_port=$port
	freeport
	mochi_admin=127.0.0.1:$port
	start mochi-bare "$bin/mochi-bare" --mqtt "127.0.0.1:$mochi_port" --admin "$mochi_admin"
	mochi_pid=$started
	wait_port "$mochi_port"
	wait_http "http://$mochi_admin/metrics" go_goroutines 30 "$mochi_pid"
}
start_mochi
pubsub_rows mochi-bare "127.0.0.1:$mochi_port"
stop "$mochi_pid"
for r in $(seq 1 "$runs"); do
	start_mochi
	bench connect mochi-bare connect --mqtt "127.0.0.1:$mochi_port" --connections "$conns" --admin "$mochi_admin" --source-ips "$sources"
	stop "$mochi_pid"
done

# --- ZooKeeper ensemble and Redis ------------------------------------------------------------
log "starting a 3-server ZooKeeper ensemble and Redis (switchboard backends)"
start backends "$bin/switchboard" backends --dir "$work/backends"
backends_pid=$started
zk="" redis=""
for i in $(seq 1 900); do
	if grep -q -- '--zk ' "$logs/backends.log" 2>/dev/null; then
		zk=$(grep -o -- '--zk [^ ]*' "$logs/backends.log" | head -1 | cut -d' ' -f2)
		redis=$(grep -o -- '--redis [^ ]*' "$logs/backends.log" | head -1 | cut -d' ' -f2)
		break
	fi
	kill -0 "$backends_pid" 2>/dev/null || break
	sleep 0.2
done
if [ -z "$zk" ] || [ -z "$redis" ]; then
	log "backends did not start"
	tail -20 "$logs/backends.log" >&2
	exit 1
fi

# start_node ID ROOT: a node on fresh ports; sets node_mqtt, node_admin, node_pid.
start_node() {
	local id=$1 root=$2 internal
	freeport
	node_mqtt=127.0.0.1:$port
	freeport
	node_admin=127.0.0.1:$port
	freeport
	internal=127.0.0.1:$port
	start "node-$id" "$bin/switchboard" node --id "$id" --mqtt "$node_mqtt" \
		--internal "$internal" --admin "$node_admin" --pprof --data-dir "$work" \
		--zk "$zk" --zk-root "$root" --redis "$redis" --redis-prefix "${root#/}" --log-level warn \
		"${node_auth[@]+"${node_auth[@]}"}"
	node_pid=$started
	wait_http "http://$node_admin/healthz" '"ready":true' 60 "$node_pid"
}

# stop_node PID ADMIN: waits (bounded) for clients to finish disconnecting first, so the
# node's presence cleanup is not cut short.
stop_node() {
	local i
	for i in $(seq 1 100); do
		curl -fsS --max-time 2 "http://$2/metrics" 2>/dev/null |
			grep -q '^switchboard_node_clients_connected 0$' && break
		sleep 0.2
	done
	stop "$1"
}

# --- a single Switchboard node ---------------------------------------------------------------
start_node solo-0 /bench-solo
pubsub_rows node "$node_mqtt"
stop_node "$node_pid" "$node_admin"
for r in $(seq 1 "$runs"); do
	start_node "solo-$r" /bench-solo
	bench connect node connect --mqtt "$node_mqtt" --connections "$conns" --admin "$node_admin" --source-ips "$sources"
	stop_node "$node_pid" "$node_admin"
done

# --- a 3-node Switchboard cluster with a router ----------------------------------------------
# start_cluster TAG: nodes TAG-1..3; sets cl_mqtt, cl_admin (comma lists), cl_pids.
start_cluster() {
	local tag=$1 n mq=() ad=()
	cl_pids=()
	for n in 1 2 3; do
		start_node "$tag-$n" /bench-cluster
		mq+=("$node_mqtt")
		ad+=("$node_admin")
		cl_pids+=("$node_pid")
	done
	cl_mqtt=$(IFS=,; echo "${mq[*]}")
	cl_admin=$(IFS=,; echo "${ad[*]}")
}
stop_cluster() {
	local n admins
	IFS=, read -r -a admins <<<"$cl_admin"
	for n in 0 1 2; do stop_node "${cl_pids[n]}" "${admins[n]}"; done
}

start_cluster c0
freeport
api=127.0.0.1:$port
start router "$bin/switchboard" router --listen "$api" --zk "$zk" --zk-root /bench-cluster \
	--redis "$redis" --redis-prefix bench-cluster --log-level warn "${router_auth[@]+"${router_auth[@]}"}"
router_pid=$started
wait_http "http://$api/healthz" '"nodes":3' 60 "$router_pid"
direct=(direct --api "http://$api" --mqtt "$cl_mqtt" --node-admin "$cl_admin" --qos 1 --source-ips "$sources")
many=("${direct[@]}" --clients 1000)
# Throughput: batches of 100 to 1,000 clients; one message per request from 64 senders on
# keep-alive connections; a burst of 10,000 to one client (4 senders, batches of 100).
# Then a client behind a slow link: the generator's delaying proxy adds 50 ms each way in
# front of one client's MQTT connection, and every batch has one message for it and one
# for each of 99 fast clients. max_wait is shorter than that client's round trip, so its
# message is queued while the batch waits: the batch should answer within max_wait + 50
# ms, and the PUBACK that comes later must remove the queued copy (no duplicates).
slow_delay_ms=50
slow_wait_ms=50
slow_batches=$((secs * 10))
for r in $(seq 1 "$runs"); do
	bench direct-batch cluster "${many[@]}" --senders 8 --batch 100 --duration "${secs}s"
	bench direct-sat cluster "${many[@]}" --senders 64 --duration "${secs}s"
	# The same two without receipts (receipt:false): what a receipt per message costs.
	bench direct-batch-norcpt cluster "${many[@]}" --senders 8 --batch 100 --duration "${secs}s" --receipts=false
	bench direct-sat-norcpt cluster "${many[@]}" --senders 64 --duration "${secs}s" --receipts=false
	bench direct-burst cluster "${direct[@]}" --clients 1 --burst 10000 --senders 4 --batch 100
	bench direct-slow cluster "${direct[@]}" --clients 100 --senders 1 --batch 100 --count $((100 * slow_batches)) \
		--delay-clients 1 --delay "${slow_delay_ms}ms" --max-wait "${slow_wait_ms}ms"
done
# Latency at a fixed offered rate: 1,000 msg/s, and half of the saturation just measured
# (the median of the direct-sat runs, with as many senders).
half=""
if sat=$("$bin/switchboard" bench report --median "direct-sat|cluster|delivered_per_s" "$results" 2>>"$logs/bench.err"); then
	half=$(awk -v s="$sat" 'BEGIN { printf "%d", s / 2 }')
	log "saturation (median of the direct-sat runs): $sat msg/s; half of it: $half msg/s"
else
	log "no saturation measured: no latency at half of it"
fi
for r in $(seq 1 "$runs"); do
	bench direct-lat cluster "${many[@]}" --senders 16 --rate 1000 --duration "${lat_secs}s"
	if [ -n "$half" ] && [ "$half" -gt 0 ]; then
		bench direct-half cluster "${many[@]}" --senders 64 --rate "$half" --duration "${lat_secs}s"
	fi
done

# Where the time goes: CPU profiles of the directed path at saturation. The nodes serve
# /debug/pprof; the router does not, so it is sampled with perf where perf works.
log "profiling the directed path at saturation"
prof=$work/profiles
mkdir -p "$prof"
profile_secs=10
timeout 120 "$bin/switchboard" bench "${many[@]}" --senders 64 --duration "$((profile_secs + 4))s" \
	--json --progress never --cpuprofile "$prof/generator.pprof" >"$prof/run.json" 2>>"$logs/bench.err" &
gen_pid=$!
sleep 2
IFS=, read -r -a admins <<<"$cl_admin"
curl_pids=()
for n in 0 1 2; do
	curl -fsS --max-time 60 -o "$prof/node-$((n + 1)).pprof" \
		"http://${admins[n]}/debug/pprof/profile?seconds=$profile_secs" &
	curl_pids+=($!)
done
router_perf=""
if command -v perf >/dev/null 2>&1 &&
	timeout 60 perf record -F 499 -g -p "$router_pid" -o "$prof/router.perf" -- sleep "$profile_secs" >"$logs/perf.log" 2>&1; then
	router_perf=$prof/router.perf
fi
for p in "${curl_pids[@]}"; do wait "$p" || log "a node profile failed"; done
wait "$gen_pid" || log "the profiling run failed"
go tool pprof -top -nodecount=25 "$bin/switchboard" "$prof"/node-*.pprof >"$prof/nodes.top" 2>/dev/null || true
go tool pprof -top -nodecount=15 "$bin/switchboard" "$prof/generator.pprof" >"$prof/generator.top" 2>/dev/null || true
if [ -n "$router_perf" ]; then
	perf report -i "$router_perf" --stdio --no-children --sort dso -g none 2>/dev/null |
		grep '%' | sed 's/[[:space:]]*$//' | head -5 >"$prof/router.dso" || true
	perf report -i "$router_perf" --stdio --no-children --sort symbol -g none --percent-limit 0.7 2>/dev/null |
		grep '%' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -25 >"$prof/router.top" || true
	perf report -i "$router_perf" --stdio --children --sort symbol -g none --percent-limit 5 2>/dev/null |
		grep '%' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -45 >"$prof/router.cum" || true
fi
stop "$router_pid"

# Pub/sub across the cluster: each publisher on the node after its subscriber's
# (--cross-node), so every message crosses between nodes; read against the single node's
# pub/sub of this run. A build without cross-node pub/sub (before issue 17) delivers
# nothing: the first such run is recorded, shows as failed in the report, and the rest are
# skipped, without failing the script. A run that delivers but loses or reorders fails it.
cross=(pubsub --mqtt "$cl_mqtt" --cross-node --pairs 8)
cross_none=""
for r in $(seq 1 "$runs"); do
	for q in 0 1; do
		[ -z "$cross_none" ] || break 2
		bench "pubsub-x-q$q" cluster "${cross[@]}" --qos "$q" --duration "${secs}s"
		if [ "$last_ok" = 0 ] && [ "$(cross_received "pubsub-x-q$q")" = 0 ]; then
			cross_none="pubsub-x-q$q"
			failed_runs=$((failed_runs - 1))
			log "no message crossed between nodes: this build has no cross-node pub/sub; skipping the other cross-node runs"
		fi
	done
done
stop_cluster
for r in $(seq 1 "$runs"); do
	start_cluster "c$r"
	bench connect cluster connect --mqtt "$cl_mqtt" --connections "$conns" --admin "$cl_admin" --source-ips "$sources"
	stop_cluster
done
stop "$backends_pid"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report ------------------------------------------------------------------------------
gen=generator_cpu_us_per_msg
report=(
	--row "pub/sub QoS 0 throughput|pubsub-q0|delivered_per_s|msg/s||$gen"
	--row "pub/sub QoS 1 throughput|pubsub-q1|delivered_per_s|msg/s||$gen"
	--row "pub/sub QoS 1 p99 latency at 1,000 msg/s|pubsub-q1-lat|latency_ms.p99|ms||$gen"
	--row "pub/sub cross-node QoS 0 throughput (publisher and subscriber on different nodes)|pubsub-x-q0|delivered_per_s|msg/s|pubsub-q0@node|$gen"
	--row "pub/sub cross-node QoS 1 throughput (publisher and subscriber on different nodes)|pubsub-x-q1|delivered_per_s|msg/s|pubsub-q1@node|$gen"
	--row "directed QoS 1, batches of 100, 1,000 clients|direct-batch|delivered_per_s|msg/s|pubsub-q1|$gen"
	--row "directed QoS 1, one message per request, 64 senders|direct-sat|delivered_per_s|msg/s|pubsub-q1|$gen"
	--row "directed QoS 1, batches of 100, 1,000 clients, receipts off|direct-batch-norcpt|delivered_per_s|msg/s|pubsub-q1|$gen"
	--row "directed QoS 1, one message per request, 64 senders, receipts off|direct-sat-norcpt|delivered_per_s|msg/s|pubsub-q1|$gen"
	--row "one client receiving a burst of 10,000: that client's msg/s|direct-burst|burst.client_per_s.p50|msg/s|pubsub-q1:delivered_per_s|$gen"
	--row "directed QoS 1 p50 latency at 1,000 msg/s|direct-lat|latency_ms.p50|ms|pubsub-q1-lat|$gen"
	--row "directed QoS 1 p99 latency at 1,000 msg/s|direct-lat|latency_ms.p99|ms|pubsub-q1-lat|$gen"
	--row "directed QoS 1 p99.9 latency at 1,000 msg/s|direct-lat|latency_ms.p999|ms|pubsub-q1-lat|$gen"
	--row "half of the saturation (one message per request), offered|direct-half|config.rate|msg/s"
	--row "directed QoS 1 p99 latency at half of the saturation|direct-half|latency_ms.p99|ms||$gen"
	--row "batch of 100, one client behind a 100 ms RTT (max_wait $slow_wait_ms ms): answer p50|direct-slow|answer_ms.p50|ms||$gen"
	--row "batch of 100, one client behind a 100 ms RTT (max_wait $slow_wait_ms ms): answer p99|direct-slow|answer_ms.p99|ms||$gen"
	--row "batch of 100, one client behind a 100 ms RTT: duplicates|direct-slow|completeness.duplicates|messages"
	--row "router CPU per message, batches of 100|direct-batch|router_cpu_us_per_msg|µs"
	--row "nodes' CPU per message, batches of 100 (3 nodes)|direct-batch|node_cpu_us_per_msg|µs"
	--row "router CPU per message, one message per request|direct-sat|router_cpu_us_per_msg|µs"
	--row "nodes' CPU per message, one message per request (3 nodes)|direct-sat|node_cpu_us_per_msg|µs"
	--row "connect storm ($conns clients)|connect|connect.per_second|conn/s"
	--row "idle memory per connection (RSS)|connect|connect.bytes_per_conn|B"
	--row "idle Go heap + stacks per connection|connect|connect.go_bytes_per_conn|B"
	--target "pub/sub cross-node QoS 0 ≥ 0.5× a single node's QoS 0 pub/sub|pubsub-x-q0|cluster|delivered_per_s|msg/s|>=|0.5|pubsub-q0|node"
	--target "pub/sub cross-node QoS 1 ≥ 0.5× a single node's QoS 1 pub/sub|pubsub-x-q1|cluster|delivered_per_s|msg/s|>=|0.5|pubsub-q1|node"
	--target "directed QoS 1, batches of 100, 1,000 clients ≥ 1.0× bare mochi's QoS 1 pub/sub|direct-batch|cluster|delivered_per_s|msg/s|>=|1.0|pubsub-q1|mochi-bare"
	--target "directed QoS 1, one message per request, 64 senders ≥ 0.4× bare mochi's QoS 1 pub/sub|direct-sat|cluster|delivered_per_s|msg/s|>=|0.4|pubsub-q1|mochi-bare"
	--target "receipts on cost at most 25 % of directed throughput, batches of 100|direct-batch|cluster|delivered_per_s|msg/s|>=|0.75|direct-batch-norcpt|cluster"
	--target "receipts on cost at most 25 % of directed throughput, one message per request|direct-sat|cluster|delivered_per_s|msg/s|>=|0.75|direct-sat-norcpt|cluster"
	--target "one client receiving a burst of 10,000 ≥ 10,000 msg/s|direct-burst|cluster|burst.client_per_s.p50|msg/s|>=|10000"
	--target "directed QoS 1 p99 < 2 ms at 1,000 msg/s offered|direct-lat|cluster|latency_ms.p99|ms|<|2"
	--target "directed QoS 1 p99 < 10 ms at half of the saturation offered|direct-half|cluster|latency_ms.p99|ms|<|10"
	--target "a batch of 100 with one client behind a 100 ms RTT answers within max_wait + 50 ms (p99)|direct-slow|cluster|answer_ms.p99|ms|<=|$((slow_wait_ms + 50))"
	--target "a batch of 100 with one client behind a 100 ms RTT: no duplicates|direct-slow|cluster|completeness.duplicates|messages|<=|0"
	--target "router CPU per message, batches of 100 ≤ 10 µs|direct-batch|cluster|router_cpu_us_per_msg|µs|<=|10"
	--target "nodes' CPU per message, batches of 100 ≤ 15 µs|direct-batch|cluster|node_cpu_us_per_msg|µs|<=|15"
	--target "idle memory per connected client on a node < 10 KB (RSS)|connect|node|connect.bytes_per_conn|B|<|10000"
	--target "idle memory per connected client on a node < 10 KB (Go heap + stacks)|connect|node|connect.go_bytes_per_conn|B|<|10000"
)
"$bin/switchboard" bench report --runs "${report[@]}" "$results" >"$work/table.md"
cat "$work/table.md"

if [ -n "$doc" ]; then
	pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not from a package"; }
	mochi_ver=$(go list -m -f '{{.Version}}' github.com/mochi-mqtt/server/v2 2>/dev/null || echo "?")
	section=$work/section.md
	{
		echo "<!-- bench.sh: begin (generated by scripts/bench.sh; what is between these markers is rewritten) -->"
		echo "## Side by side: mosquitto, bare mochi, a Switchboard node, a Switchboard cluster"
		echo
		echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Medians of $runs runs each"
		echo "(<sub>n</sub> is the number of runs); every run's figure is listed further down."
		echo
		echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/{print $2}') GiB of memory,"
		echo "Linux $(uname -r), $(go version | cut -d' ' -f3-). mosquitto $(pkgver mosquitto), redis-server $(pkgver redis-server),"
		echo "zookeeper $(pkgver zookeeper), mochi-mqtt $mochi_ver. Load average (1, 5, 15 min) before the run: $load_before;"
		echo "after: $load_after. Everything (brokers, backends, router, generator) shares the same cores,"
		echo "so the generator's CPU counts against every system alike."
		echo
		echo "Ratios are the Switchboard figure divided by the reference system's figure for the same"
		echo "metric, measured by the same generator in the same run: for the directed throughput rows,"
		echo "of QoS 1 pub/sub throughput (the burst row too: one client's msg/s against the pub/sub"
		echo "total); for the directed latency rows at 1,000 msg/s, of QoS 1 pub/sub latency at 1,000"
		echo "msg/s. Higher is better for throughput; lower is better for latency, CPU and memory. The last"
		echo "column is the generator's own CPU time per message in that row's runs: msg/s × µs/msg ÷ 10⁶"
		echo "is how many cores the generator kept busy, and a row where that nears the machine's $(nproc)"
		echo "cores measured the generator, not the system."
		echo
		echo "Half of the saturation is half the median of the \`direct-sat\` runs just before, offered"
		echo "from as many senders. The slow client is behind \`switchboard bench\`'s own delaying proxy"
		echo "(${slow_delay_ms} ms each way, in the generator's process); each batch has one message for it and"
		echo "one for each of 99 clients without a delay, with \`max_wait\` ${slow_wait_ms} ms; the answer time is"
		echo "from sending the request to reading the answer, over ${slow_batches} batches a run."
		echo
		echo "The cross-node pub/sub rows run \`bench pubsub --cross-node\` against the cluster's three nodes"
		echo "(the router stopped; ZooKeeper and Redis as for every node): pair i's subscriber connects to"
		echo "node i mod 3 and its publisher to node (i + 1) mod 3, so every message crosses from one node to"
		echo "another. In brackets, the ratio to the single Switchboard node's pub/sub at the same QoS in"
		echo "this run (its target: at least 0.5×)."
		if [ -n "$cross_none" ]; then
			echo "This build has no cross-node pub/sub: the first cross-node run ($cross_none) received no"
			echo "message, and the other cross-node runs were skipped."
		fi
		echo
		sed -n '1,/^$/p' "$work/table.md" | sed '/^$/d'
		echo
		echo "### Targets"
		echo
		sed -n '/^- \*\*/p' "$work/table.md"
		if grep -q '^Runs that failed' "$work/table.md"; then
			echo
			sed -n '/^Runs that failed/,$p' "$work/table.md"
		fi
		echo
		echo "### Where the time goes (directed QoS 1 at saturation, ${profile_secs}s)"
		echo
		echo "The three nodes' CPU profiles merged (\`/debug/pprof/profile\`), top entries by own time:"
		echo
		echo '```'
		sed -n '/flat%/,$p' "$prof/nodes.top" 2>/dev/null || echo "(no node profile)"
		echo '```'
		echo
		if [ -s "$prof/router.top" ]; then
			echo "The router has no /debug/pprof; it was sampled with \`perf record -F 499 -g -p <router pid>\`."
			echo "Kernel ([k]) against the router's own code:"
			echo
			echo '```'
			cat "$prof/router.dso"
			echo '```'
			echo
			echo "By own time:"
			echo
			echo '```'
			cat "$prof/router.top"
			echo '```'
			echo
			echo "Including callees (≥ 5%):"
			echo
			echo '```'
			cat "$prof/router.cum"
			echo '```'
		else
			echo "The router has no /debug/pprof and perf was not available: no router profile."
		fi
		echo
		echo "The generator itself (\`--cpuprofile\`) during the same run:"
		echo
		echo '```'
		sed -n '/flat%/,$p' "$prof/generator.top" 2>/dev/null || echo "(no generator profile)"
		echo '```'
		echo
		echo "### Every run"
		echo
		sed -n '/^| | system | runs |/,/^$/p' "$work/table.md" | sed '/^$/d'
		echo
		echo "### Commands"
		echo
		echo "Servers (PORT: a free port picked by the script; everything on 127.0.0.1). mosquitto's whole"
		echo "configuration:"
		echo
		echo '```'
		sed 's/^listener [0-9]*/listener PORT/' "$work/mosquitto.conf"
		echo '```'
		echo
		echo '```'
		echo "mosquitto -c mosquitto.conf"
		echo "mochi-bare --mqtt 127.0.0.1:PORT --admin 127.0.0.1:PORT"
		echo "switchboard backends --dir DIR   # 3-server ZooKeeper ensemble + Redis"
		node_flags="${node_auth[*]+"${node_auth[*]}"}"
		echo "switchboard node --id ID --mqtt 127.0.0.1:PORT --internal 127.0.0.1:PORT --admin 127.0.0.1:PORT --pprof --zk ZK --zk-root ROOT --redis REDIS --redis-prefix ROOT --log-level warn ${node_flags//$work\//}"
		if [ -f "$work/auth.json" ]; then echo "# auth.json: $(cat "$work/auth.json")"; fi
		echo "switchboard router --listen 127.0.0.1:PORT --zk ZK --zk-root /bench-cluster --redis REDIS --redis-prefix bench-cluster --log-level warn ${router_auth[*]+"${router_auth[*]}"}"
		echo '```'
		echo
		echo "Benchmarks (the first run of each; each also had \`--json --progress never --label L --system S\`):"
		echo
		echo '```'
		cut -d' ' -f3- "$work/commands.txt"
		echo '```'
		echo "<!-- bench.sh: end -->"
	} >"$section"
	mkdir -p "$(dirname "$doc")"
	if [ -f "$doc" ] && grep -q '<!-- bench.sh: begin' "$doc"; then
		awk -v sec="$section" '
			/<!-- bench.sh: begin/ { while ((getline l < sec) > 0) print l; skip = 1; next }
			/<!-- bench.sh: end/ { skip = 0; next }
			!skip { print }' "$doc" >"$doc.tmp"
		mv "$doc.tmp" "$doc"
	elif [ -f "$doc" ]; then
		{ echo; cat "$section"; } >>"$doc"
	else
		{ echo "# Benchmarks"; echo; cat "$section"; } >"$doc"
	fi
	log "wrote $doc"
fi
if [ "$failed_runs" -gt 0 ]; then
	log "$failed_runs benchmark run(s) failed"
	exit 1
fi
