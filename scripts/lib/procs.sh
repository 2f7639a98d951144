# shellcheck shell=bash
# Process and port helpers shared by the benchmark scripts (bench.sh, bench-conns.sh).
# Source it after setting:
#   script_name the name that prefixes its log lines
#   work, logs  its work directory and the directory of the processes' logs
#   give_up_at  the epoch second after which check_time gives the run up
# It installs the EXIT trap: every process started with start is stopped, in reverse order,
# and the work directory is removed unless the run failed or BENCH_KEEP=1.

log() { echo "$script_name: $*" >&2; }

pids=()
stop_pid() { # stop_pid PID [SECONDS]: TERM, then KILL after SECONDS (default 10)
	local pid=$1 waited=0 limit=$((${2:-10} * 10))
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && [ $waited -lt $limit ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop in time: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local status=$? i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[i]}" 20
	done
	if [ "$status" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "work directory kept (logs, results): $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_time() {
	if [ "$(date +%s)" -ge "$give_up_at" ]; then
		log "over BENCH_TIMEOUT; giving up"
		exit 1
	fi
}

start() { # start NAME CMD...: in the background, logging to $logs/NAME.log; sets $started
	local name=$1
	shift
	"$@" >"$logs/$name.log" 2>&1 &
	started=$!
	pids+=("$started")
}

stop() { # stop PID: stops one process started with start
	local pid=$1 keep=() p
	stop_pid "$pid" 15
	for p in "${pids[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	pids=("${keep[@]+"${keep[@]}"}")
}

used_ports=" "
# freeport: sets $port to a free TCP port on 127.0.0.1 below the ephemeral range, never
# handed out twice. (It sets a variable rather than printing: a $(...) subshell would
# forget the ports already handed out.)
freeport() {
	local p i
	for i in $(seq 1 500); do
		p=$((20000 + RANDOM % 12000))
		case "$used_ports" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports="$used_ports$p "
			port=$p
			return 0
		fi
	done
	log "no free port found"
	return 1
}

wait_port() { # wait_port PORT [SECONDS]
	local i
	for i in $(seq 1 $((${2:-30} * 10))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "nothing listens on 127.0.0.1:$1"
	return 1
}

wait_http() { # wait_http URL PATTERN [SECONDS [PID]]: until the answer matches PATTERN
	local i
	for i in $(seq 1 $((${3:-30} * 5))); do
		if curl -fsS --max-time 2 "$1" 2>/dev/null | grep -q "$2"; then return 0; fi
		if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
			log "the server for $1 exited"
			return 1
		fi
		sleep 0.2
	done
	log "$1 never answered $2"
	return 1
}
