#!/usr/bin/env bash
# Runs Switchboard's whole test suite on this machine. On a fresh Debian machine it first
# installs ZooKeeper and Redis from Debian's packages (the tests start their own servers on
# free 127.0.0.1 ports and stop them afterwards; nothing needs to be running beforehand).
set -euo pipefail
cd "$(dirname "$0")/.."

bash internal/backends/install.sh
echo "== npm ci (MQTT.js for the integration tests)"
npm ci --prefix integration/js --no-audit --no-fund --loglevel=error
echo "== npm ci (MQTT.js for the Node client example)"
npm ci --prefix examples/node --no-audit --no-fund --loglevel=error

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go test"
# -p 2: packages that start a ZooKeeper ensemble; two at a time fit 2 cores.
go test -count=1 -p 2 -timeout 20m "$@" $(go list ./... | grep -v '/integration$')
# The integration tests then run alone: real node processes on 2s session timeouts beside
# ZooKeeper, Redis and Chromium, which another package's servers could starve on two cores
# long enough for a node to fence itself (as it must) in a test that is not about fencing.
go test -count=1 -timeout 20m "$@" ./integration/

echo "== fuzz (bounded)"
go test -run "^$" -fuzz "^FuzzDecode$" -fuzztime 15s ./wire/
go test -run "^$" -fuzz "^FuzzRequest$" -fuzztime 15s ./router/
go test -run "^$" -fuzz "^FuzzParseFile$" -fuzztime 10s ./auth/
go test -run "^$" -fuzz "^FuzzCovers$" -fuzztime 10s ./auth/
# A real node per fuzzing process; minimization is capped so the 10s go to new inputs.
go test -run "^$" -fuzz "^FuzzConnect$" -fuzztime 10s -fuzzminimizetime 20x ./node/
