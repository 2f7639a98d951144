#!/usr/bin/env bash
# Installs the servers Switchboard's tests, benchmarks and `up --zk/--redis` runs need from
# Debian's packages, if they are missing. Idempotent: a machine that has them is left alone.
#
# The Go helper in internal/backends embeds and runs this same file, so the script and the
# test helper cannot drift apart.
set -euo pipefail

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Sentinel failover tests run three redis-sentinel processes; redis-cli (in redis-tools, which
# redis-server depends on) creates and reshards the test Redis Cluster.
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
# The tests drive the system with the clients users have: mosquitto_sub/pub, and MQTT.js
# on Node.js (its npm packages come from the npm registry, see scripts/test.sh).
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The dashboard is tested in a real headless Chromium; the Python client example runs on
# Debian's python3 with Debian's paho-mqtt (PyPI is not used).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || need+=(python3 python3-paho-mqtt)
# The deployment files in deploy/ are checked against the real software: HAProxy in front
# of real nodes, promtool (from the prometheus package) on the alert rules, systemd-analyze
# on the units.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ "${SWITCHBOARD_INSTALL_BENCH:-0}" = 1 ]; then
	command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
fi

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "install-deps: missing ${need[*]} and not root (no sudo): install them with apt-get" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their own system services: the project starts the servers it needs
# on free loopback ports itself. policy-rc.d exit 101 tells invoke-rc.d "not now".
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod +x "$policy"
	made_policy=1
fi
trap '[ "$made_policy" = 1 ] && $sudo rm -f "$policy"' EXIT

$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-deps: done" >&2
