#!/usr/bin/env bash
# Creates the secrets docker-compose.yml mounts, in ./secrets (ignored by git): the cluster
# token nodes and routers share, the API tokens (`backend` for you, `prometheus` for the
# Prometheus of the observability profile) and Prometheus's copy of its token. Existing
# files are kept. The containers run as uid 65532, so the files are world-readable: this is
# a cluster to try things on one machine, not a production layout (see deploy/systemd/).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
tok() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
[ -s secrets/cluster.token ] || tok >secrets/cluster.token
[ -s secrets/api.tokens ] || printf 'backend %s\nprometheus %s\n' "$(tok)" "$(tok)" >secrets/api.tokens
[ -s secrets/prometheus.token ] || awk '$1 == "prometheus" { print $2 }' secrets/api.tokens >secrets/prometheus.token
chmod 0644 secrets/*
echo "secrets in $(pwd)/secrets; the API token for curl: $(awk '$1 == "backend" { print $2 }' secrets/api.tokens)"
