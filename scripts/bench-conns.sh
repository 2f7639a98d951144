#!/usr/bin/env bash
# Connection scale, side by side in one run on this machine: mosquitto, a bare mochi broker
# (cmd/mochi-bare), a single Switchboard node (with ZooKeeper and Redis) and the event-loop
# prototype (cmd/epoll-idle: memory without goroutines, not a broker) take the same
# connection storms from `switchboard bench connect`: every client connects, subscribes
# to its inbox at QoS 1 and stays idle. Reported: the storm rate (CONNECT + SUBSCRIBE +
# presence recorded, plain and TLS) and the idle memory per connection (resident memory
# growth, and for the Go brokers heap + stacks), at each count in BENCH_CONN_COUNTS. The
# table goes into docs/BENCHMARKS.md between the bench-conns.sh markers.
#
#   scripts/bench-conns.sh                                   # 10,000 and 100,000 connections
#   BENCH_RUNS=1 BENCH_CONN_COUNTS=2000 scripts/bench-conns.sh   # a quick check of the script
#
# Open files: the script raises its soft limit (ulimit -n) to the hard one. A count that
# does not fit under it (the broker and the generator each hold one descriptor a
# connection) is not run, and the report says so with the limit; the largest round count
# that fits is run instead. Raising a hard limit needs CAP_SYS_RESOURCE (or limits.conf /
# systemd's LimitNOFILE) outside this script.
# Connections come from 100 loopback addresses (127.0.0.2-127.0.0.101), so neither the
# ephemeral ports of one address nor the node's per-address connection limit caps a storm.
#
# Everything listens on 127.0.0.1 only, is stopped on exit (trap EXIT), every wait is
# bounded and the whole run gives up after BENCH_TIMEOUT seconds.
#
# Then the largest count is held for 75 s, pinging, while the brokers' CPU is read and (on
# the node) directed messages go to 100 other clients through a router.
#
# Last, a reconnect storm: a node holding BENCH_FAILOVER_CLIENTS clients is SIGKILLed 10 s
# into 40 s of directed QoS 1 messages to them (1,000 msg/s through a router); they come
# back on the two other nodes as devices do (a random wait under 2 s, then exponential
# back-off with jitter while dials fail). Reported: how long until all are back and until
# each has what was queued for it meanwhile, and every message counted.
#
# Environment: BENCH_RUNS (3: storms per system at the first count, and TLS storms),
# BENCH_CONN_COUNTS ("10000 100000"), BENCH_HOLD_SECS (75), BENCH_FAILOVER_CLIENTS (30000),
# BENCH_SECTIONS ("storm tls hold failover": which parts run), BENCH_TIMEOUT (2400), BENCH_DOC
# (docs/BENCHMARKS.md; empty: no doc), BENCH_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
counts=${BENCH_CONN_COUNTS:-10000 100000}
doc=${BENCH_DOC-docs/BENCHMARKS.md}
give_up_at=$(($(date +%s) + ${BENCH_TIMEOUT:-2400}))
sources=127.0.0.2-127.0.0.101
sections=" ${BENCH_SECTIONS:-storm tls hold failover} "
want() { case "$sections" in *" $1 "*) return 0 ;; esac; return 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
# Descriptors beyond the connections: listeners, the store and coordinator clients, logs.
max_conns=$((nofile - 1000))

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench-conns.XXXXXX")
bin=$work/bin
logs=$work/logs
results=$work/results.json
mkdir -p "$bin" "$logs"
: >"$results"
: >"$work/commands.txt"
: >"$work/skipped.txt"

script_name=bench-conns
# shellcheck source=lib/procs.sh
source scripts/lib/procs.sh # (the script runs in the repository root)

failed_runs=0
bench() { # bench LABEL SYSTEM ARGS...: one run, its JSON result appended to $results
	local label=$1 system=$2
	shift 2
	check_time
	if ! grep -q "^$label $system " "$work/commands.txt"; then
		echo "$label $system switchboard bench $*" >>"$work/commands.txt"
	fi
	log "$label on $system: switchboard bench $*"
	if ! timeout 900 "$bin/switchboard" bench "$@" --json --progress never \
		--label "$label" --system "$system" >>"$results" 2>>"$logs/bench.err"; then
		log "$label on $system failed (see $logs/bench.err)"
		failed_runs=$((failed_runs + 1))
	fi
}

# ------------------------------------------------------------------------------------------
log "installing mosquitto, ZooKeeper and Redis from Debian's packages if missing"
SWITCHBOARD_INSTALL_BENCH=1 bash internal/backends/install.sh
log "building"
go build -o "$bin/switchboard" ./cmd/switchboard
go build -o "$bin/mochi-bare" ./cmd/mochi-bare
go build -o "$bin/epoll-idle" ./cmd/epoll-idle
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# A CA and a server certificate for 127.0.0.1 (ECDSA P-256, as a modern broker would use).
tlsdir=$work/tls
mkdir -p "$tlsdir"
openssl ecparam -name prime256v1 -genkey -noout -out "$tlsdir/ca.key" 2>/dev/null
openssl req -x509 -new -key "$tlsdir/ca.key" -days 2 -subj /CN=bench-ca -out "$tlsdir/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tlsdir/server.key" 2>/dev/null
openssl req -new -key "$tlsdir/server.key" -subj /CN=127.0.0.1 -out "$tlsdir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tlsdir/ext.cnf"
openssl x509 -req -in "$tlsdir/server.csr" -CA "$tlsdir/ca.pem" -CAkey "$tlsdir/ca.key" -CAcreateserial \
	-days 2 -extfile "$tlsdir/ext.cnf" -out "$tlsdir/server.pem" 2>/dev/null
# mosquitto started as root drops to its own user before it reads them: a throwaway key
# for loopback, readable by it.
chmod 755 "$work" "$tlsdir"
chmod 644 "$tlsdir/server.key"

# The node admits anonymous clients, as mosquitto and bare mochi are run here.
node_auth=(--allow-anonymous)

start_mosquitto() { # [tls]: sets mosq_addr, mosq_pid
	freeport
	mosq_addr=127.0.0.1:$port
	{
		echo "listener $port 127.0.0.1"
		if [ "${1:-}" = tls ]; then
			echo "certfile $tlsdir/server.pem"
			echo "keyfile $tlsdir/server.key"
		fi
		echo "allow_anonymous true"
		echo "persistence false"
		echo "log_dest stderr"
		echo "log_type error"
		echo "log_type warning"
		echo "connection_messages false"
	} >"$work/mosquitto.conf"
	start mosquitto mosquitto -c "$work/mosquitto.conf"
	mosq_pid=$started
	wait_port "$port"
}

start_mochi() { # sets mochi_addr, mochi_admin, mochi_pid
	freeport
	mochi_addr=127.0.0.1:$port
	freeport
	mochi_admin=127.0.0.1:$port
	start mochi-bare "$bin/mochi-bare" --mqtt "$mochi_addr" --admin "$mochi_admin"
	mochi_pid=$started
	wait_port "${mochi_addr##*:}"
	wait_http "http://$mochi_admin/metrics" go_goroutines 30 "$mochi_pid"
}

start_epoll() { # sets ep_addr, ep_admin, ep_pid
	freeport
	ep_addr=127.0.0.1:$port
	freeport
	ep_admin=127.0.0.1:$port
	start epoll-idle "$bin/epoll-idle" --mqtt "$ep_addr" --admin "$ep_admin"
	ep_pid=$started
	wait_port "${ep_addr##*:}"
	wait_http "http://$ep_admin/metrics" go_goroutines 30 "$ep_pid"
}

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

node_seq=0
start_node() { # [tls]: a fresh node on fresh ports; sets node_mqtt, node_admin, node_pid
	local internal tls=()
	node_seq=$((node_seq + 1))
	freeport
	node_mqtt=127.0.0.1:$port
	freeport
	node_admin=127.0.0.1:$port
	freeport
	internal=127.0.0.1:$port
	if [ "${1:-}" = tls ]; then
		tls=(--tls-cert "$tlsdir/server.pem" --tls-key "$tlsdir/server.key")
	fi
	start "node-$node_seq" "$bin/switchboard" node --id "conns-$node_seq" --mqtt "$node_mqtt" \
		--internal "$internal" --admin "$node_admin" --pprof --data-dir "$work" \
		--zk "$zk" --zk-root /bench-conns --redis "$redis" --redis-prefix "${node_prefix:-conns-$node_seq}" --log-level warn \
		"${node_auth[@]}" "${tls[@]+"${tls[@]}"}"
	node_pid=$started
	wait_http "http://$node_admin/healthz" '"ready":true' 60 "$node_pid"
}

stop_node() { # waits (bounded) for the node's clients to be gone first
	local i
	for i in $(seq 1 300); do
		curl -fsS --max-time 2 "http://$node_admin/metrics" 2>/dev/null |
			grep -q '^switchboard_node_clients_connected 0$' && break
		sleep 0.2
	done
	stop "$node_pid"
}

# storm_round LABEL COUNT: one storm of COUNT on each system, each on a fresh broker.
storm_round() {
	local label=$1 n=$2
	local common=(connect --connections "$n" --source-ips "$sources" --settle 5s)
	start_mosquitto
	bench "$label" mosquitto "${common[@]}" --mqtt "$mosq_addr" --pid "$mosq_pid"
	stop "$mosq_pid"
	start_mochi
	bench "$label" mochi-bare "${common[@]}" --mqtt "$mochi_addr" --admin "$mochi_admin"
	stop "$mochi_pid"
	start_node
	bench "$label" node "${common[@]}" --mqtt "$node_mqtt" --admin "$node_admin"
	stop_node
	start_epoll
	bench "$label" epoll "${common[@]}" --mqtt "$ep_addr" --admin "$ep_admin" --pid "$ep_pid"
	stop "$ep_pid"
}

first=""
run_counts=""
for n in $counts; do
	if [ "$n" -gt "$max_conns" ]; then
		log "$n connections do not fit under the open-files limit ($nofile): not run"
		echo "$n" >>"$work/skipped.txt"
		n=$((max_conns / 1000 * 1000))
		case " $counts $run_counts " in *" $n "*) continue ;; esac
		log "the largest round count that fits instead: $n"
	fi
	run_counts="$run_counts $n"
	if ! want storm; then
		first=${first:-$n}
	elif [ -z "$first" ]; then
		first=$n
		for r in $(seq 1 "$runs"); do storm_round "connect-$n" "$n"; done
	else
		storm_round "connect-$n" "$n" # large counts once: the machine is shared
	fi
done

# TLS storms at the first count: mosquitto's TLS listener against the node's.
tls_n=${first:-0}
want tls || tls_n=0
if [ "$tls_n" -gt 0 ]; then
	for r in $(seq 1 "$runs"); do
		start_mosquitto tls
		bench connect-tls mosquitto connect --connections "$tls_n" --source-ips "$sources" --settle 2s \
			--mqtt "$mosq_addr" --pid "$mosq_pid" --tls-ca "$tlsdir/ca.pem"
		stop "$mosq_pid"
		start_node tls
		bench connect-tls node connect --connections "$tls_n" --source-ips "$sources" --settle 2s \
			--mqtt "$node_mqtt" --admin "$node_admin" --tls-ca "$tlsdir/ca.pem"
		stop_node
	done
fi
# Holding the largest count: the clients (keep-alive 60 s) stay connected for hold_secs and
# each pings every 30 s; the broker's CPU over the hold is its idle cost. On the node, a
# router sends directed QoS 1 messages meanwhile to 100 more clients (a second generator
# process: each holds its own descriptors) at 200 msg/s: their latency with the node full.
hold_n=0
for n in $run_counts; do hold_n=$n; done
want hold || hold_n=0
hold_secs=${BENCH_HOLD_SECS:-75}
if [ "$hold_n" -gt 0 ]; then
	hold_n=$((hold_n - 500)) # room for the directed clients, the router's and the node's own
	hold=(connect --connections "$hold_n" --source-ips "$sources" --settle 2s --keepalive 60
		--hold "${hold_secs}s" --ping 30s)
	start_mosquitto
	bench "hold-$hold_n" mosquitto "${hold[@]}" --mqtt "$mosq_addr" --pid "$mosq_pid"
	stop "$mosq_pid"
	start_node
	freeport
	api=127.0.0.1:$port
	start router "$bin/switchboard" router --listen "$api" --zk "$zk" --zk-root /bench-conns \
		--redis "$redis" --redis-prefix "conns-$node_seq" --log-level warn --no-auth
	router_pid=$started
	wait_http "http://$api/healthz" '"nodes":1' 60 "$router_pid"
	bench "hold-$hold_n" node "${hold[@]}" --mqtt "$node_mqtt" --admin "$node_admin" &
	hold_pid=$!
	for i in $(seq 1 600); do # until the held clients are all connected (bounded)
		curl -fsS --max-time 2 "http://$node_admin/metrics" 2>/dev/null |
			grep -q "^switchboard_node_clients_connected $hold_n\$" && break
		sleep 0.5
	done
	sleep 5
	bench "hold-direct" node direct --api "http://$api" --mqtt "$node_mqtt" --node-admin "$node_admin" \
		--qos 1 --clients 100 --senders 4 --rate 200 --duration 20s --source-ips "$sources"
	wait "$hold_pid" || true
	# (bench counted a failure in its own subshell: count it here.)
	grep -A1 "\"label\": \"hold-$hold_n\"," "$results" | grep -q '"system": "node"' || failed_runs=$((failed_runs + 1))
	stop "$router_pid"
	stop_node
fi
# The reconnect storm: three nodes sharing one store prefix, a router; every client starts on
# the first node, which the bench SIGKILLs.
fail_n=${BENCH_FAILOVER_CLIENTS:-30000}
want failover || fail_n=0
if [ "$fail_n" -gt "$max_conns" ]; then
	log "a reconnect storm of $fail_n does not fit under the open-files limit ($nofile): not run"
	echo "$fail_n" >>"$work/skipped.txt"
	fail_n=$((max_conns / 1000 * 1000))
	log "the largest round count that fits instead: $fail_n"
fi
if [ "$fail_n" -gt 0 ]; then
	node_prefix=conns-failover
	start_node
	a_mqtt=$node_mqtt a_pid=$node_pid
	start_node
	b_mqtt=$node_mqtt b_admin=$node_admin b_pid=$node_pid
	start_node
	c_mqtt=$node_mqtt c_admin=$node_admin c_pid=$node_pid
	freeport
	api=127.0.0.1:$port
	start router "$bin/switchboard" router --listen "$api" --zk "$zk" --zk-root /bench-conns \
		--redis "$redis" --redis-prefix "$node_prefix" --log-level warn --no-auth
	router_pid=$started
	wait_http "http://$api/healthz" '"nodes":3' 60 "$router_pid"
	bench "failover-$fail_n" node direct --api "http://$api" --mqtt "$a_mqtt" --reconnect-mqtt "$b_mqtt,$c_mqtt" \
		--kill-pid "$a_pid" --kill-after 10s --duration 40s --rate 1000 --qos 1 --clients "$fail_n" --senders 8 \
		--reconnect-jitter 2s --drain-timeout 120s --source-ips "$sources" --node-admin "$b_admin,$c_admin"
	stop "$router_pid"
	stop "$a_pid" # (killed by the bench; this only forgets it)
	stop "$b_pid"
	stop "$c_pid"
	unset node_prefix
fi
stop "$backends_pid"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report ------------------------------------------------------------------------------
gen=connect.generator_cpu_us_per_conn
report=()
storm_counts=$run_counts
want storm || storm_counts=""
for n in $storm_counts; do
	nf=$(printf "%'d" "$n" 2>/dev/null || echo "$n")
	report+=(
		--row "connect storm, $nf clients (CONNECT + SUBSCRIBE)|connect-$n|connect.per_second|conn/s||$gen"
		--row "connect latency p99, $nf clients|connect-$n|connect.latency_ms.p99|ms"
		--row "idle memory per connection (RSS), $nf|connect-$n|connect.bytes_per_conn|B"
		--row "idle Go heap + stacks per connection, $nf|connect-$n|connect.go_bytes_per_conn|B"
		--target "idle memory per connected client on a node ≤ 10 KB (RSS), $nf|connect-$n|node|connect.bytes_per_conn|B|<=|10000"
	)
done
if [ "$hold_n" -gt 0 ]; then
	nf=$(printf "%'d" "$hold_n" 2>/dev/null || echo "$hold_n")
	report+=(
		--row "$nf idle clients held ${hold_secs} s, each pinging every 30 s: broker CPU|hold-$hold_n|connect.hold_cpu_cores|cores"
		--row "… pings answered|hold-$hold_n|connect.pings|pings"
		--row "… pings failed|hold-$hold_n|connect.pings_failed|pings"
		--row "… ping round trip p99|hold-$hold_n|connect.ping_latency_ms.p99|ms"
		--row "directed QoS 1 to 100 more clients at 200 msg/s while $nf are held: p99|hold-direct|latency_ms.p99|ms"
		--target "node CPU holding $nf idle clients (pinging every 30 s) < 10% of a core|hold-$hold_n|node|connect.hold_cpu_cores|cores|<|0.1"
		--target "every PINGREQ of $nf held clients answered|hold-$hold_n|node|connect.pings_failed|pings|<=|0"
		--target "directed message p99 < 10 ms while $nf clients are held|hold-direct|node|latency_ms.p99|ms|<|10"
	)
fi
if [ "$fail_n" -gt 0 ]; then
	nf=$(printf "%'d" "$fail_n" 2>/dev/null || echo "$fail_n")
	report+=(
		--row "reconnect storm: $nf clients of a killed node all back on the other two, from the kill|failover-$fail_n|failover.all_back_s|s"
		--row "… a client back, median|failover-$fail_n|failover.back_s.p50|s"
		--row "… every client's backlog (queued while it was away) delivered, from the kill|failover-$fail_n|failover.drained_s|s"
		--row "… dials or subscribes refused before all were back|failover-$fail_n|failover.failed_dials|dials"
		--row "… messages accepted (1,000/s offered for 40 s)|failover-$fail_n|completeness.accepted|messages"
		--row "… accepted and lost|failover-$fail_n|completeness.missing|messages"
		--row "… duplicates|failover-$fail_n|completeness.duplicates|messages"
		--row "… out of order|failover-$fail_n|completeness.out_of_order|messages"
		--target "nothing accepted is lost when a node holding $nf clients is killed|failover-$fail_n|node|completeness.missing|messages|<=|0"
	)
fi
if [ "$tls_n" -gt 0 ]; then
	nf=$(printf "%'d" "$tls_n" 2>/dev/null || echo "$tls_n")
	report+=(
		--row "TLS connect storm, $nf clients|connect-tls|connect.per_second|conn/s||$gen"
		--row "idle memory per TLS connection (RSS), $nf|connect-tls|connect.bytes_per_conn|B"
		--target "connect storm, $nf clients ≥ 1.0× mosquitto|connect-$tls_n|node|connect.per_second|conn/s|>=|1.0|connect-$tls_n|mosquitto"
	)
fi
"$bin/switchboard" bench report --runs --systems "mosquitto=mosquitto,mochi-bare=bare mochi,node=Switchboard node,epoll=event-loop prototype" \
	"${report[@]}" "$results" >"$work/table.md"
cat "$work/table.md"

if [ -n "$doc" ]; then
	pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not from a package"; }
	mochi_ver=$(go list -m -f '{{.Version}}' github.com/mochi-mqtt/server/v2 2>/dev/null || echo "?")
	section=$work/section.md
	{
		echo "<!-- bench-conns.sh: begin (generated by scripts/bench-conns.sh; what is between these markers is rewritten) -->"
		echo "### Side by side: mosquitto, bare mochi, a Switchboard node, an event-loop prototype"
		echo
		echo "Generated by \`scripts/bench-conns.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Storms at the first"
		echo "count: medians of $runs runs each on a fresh broker; larger counts once."
		echo
		echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/{print $2}') GiB of memory,"
		echo "Linux $(uname -r), $(go version | cut -d' ' -f3-). mosquitto $(pkgver mosquitto), redis-server $(pkgver redis-server),"
		echo "mochi-mqtt $mochi_ver. Open files (ulimit -n, raised to the hard limit): $nofile. Load average"
		echo "(1, 5, 15 min) before the run: $load_before; after: $load_after. The machine was shared with other"
		echo "work; brokers, Redis, ZooKeeper and the generator share its cores."
		echo
		echo "Each client connects (MQTT 3.1.1, clean session, keep-alive 600 s), subscribes to"
		echo "\`inbox/<id>\` at QoS 1 and stays idle; on the node that is CONNECT + presence recorded in"
		echo "Redis + SUBSCRIBE + its mailbox read. The rate is from the first dial to the last SUBACK,"
		echo "64 handshakes in flight, from 100 source addresses. Memory is read 5 s after the storm"
		echo "(2 s for TLS), after a forced GC on the Go brokers: resident memory growth (VmRSS for"
		echo "mosquitto, process_resident_memory_bytes for the Go brokers) over the connections held."
		echo "The last column is the generator's own CPU time per connection (getrusage): rate × µs ÷"
		echo "10⁶ is how many of the $(nproc) cores it kept busy."
		echo
		echo "The reconnect storm: three nodes and a router on the same ZooKeeper and Redis; every"
		echo "client (MQTT 5, keep-alive 60 s) connects to the first node and subscribes; a sender posts"
		echo "directed QoS 1 messages to them at 1,000 msg/s for 40 s; 10 s in, the bench SIGKILLs the"
		echo "first node. Each client then waits a random time under 2 s, dials one of the two others"
		echo "and subscribes again, doubling a random back-off (to 30 s) while that is refused. Times"
		echo "count from the kill; \"backlog delivered\" is when the last client had every message"
		echo "accepted for it before it was back. Messages are counted as in every directed run."
		echo
		sed -n '1,/^$/p' "$work/table.md" | sed '/^$/d'
		echo
		echo "#### Targets"
		echo
		sed -n '/^- \*\*/p' "$work/table.md"
		while read -r n; do
			[ -n "$n" ] || continue
			echo "- **not run** — $n connections: the open-files limit is $nofile (hard), and the broker"
			echo "  and the generator each need a descriptor a connection; raising the hard limit needs"
			echo "  CAP_SYS_RESOURCE, which this machine's sessions do not have; the largest round count"
			echo "  under the limit was run instead"
		done <"$work/skipped.txt"
		if grep -q '^Runs that failed' "$work/table.md"; then
			echo
			sed -n '/^Runs that failed/,$p' "$work/table.md"
		fi
		echo
		echo "#### Every run"
		echo
		sed -n '/^| | system | runs |/,/^$/p' "$work/table.md" | sed '/^$/d'
		echo
		echo "#### Commands"
		echo
		echo '```'
		sed "s/^listener [0-9]*/listener PORT/; s|$tlsdir/||" "$work/mosquitto.conf" | sed 's/^/# mosquitto.conf (TLS run): /'
		echo "mochi-bare --mqtt 127.0.0.1:PORT --admin 127.0.0.1:PORT"
		echo "epoll-idle --mqtt 127.0.0.1:PORT --admin 127.0.0.1:PORT"
		echo "switchboard node --id ID --mqtt 127.0.0.1:PORT --internal 127.0.0.1:PORT --admin 127.0.0.1:PORT --pprof --zk ZK --zk-root /bench-conns --redis REDIS --redis-prefix ID --log-level warn ${node_auth[*]} [--tls-cert server.pem --tls-key server.key]"
		sed -E "s/^([^ ]+) ([^ ]+) (.*)\$/\3   # \1 on \2/; s|$tlsdir/||" "$work/commands.txt"
		echo '```'
		echo "<!-- bench-conns.sh: end -->"
	} >"$section"
	if [ -f "$doc" ] && grep -q '<!-- bench-conns.sh: begin' "$doc"; then
		awk -v sec="$section" '
			/<!-- bench-conns.sh: begin/ { while ((getline l < sec) > 0) print l; skip = 1; next }
			/<!-- bench-conns.sh: end/ { skip = 0; next }
			!skip { print }' "$doc" >"$doc.tmp"
		mv "$doc.tmp" "$doc"
	else
		{ echo; cat "$section"; } >>"$doc"
	fi
	log "wrote $doc"
fi
if [ "$failed_runs" -gt 0 ]; then
	log "$failed_runs benchmark run(s) failed"
	exit 1
fi
