#!/usr/bin/env bash
# Installs ZooKeeper, Redis (and, with SWITCHBOARD_INSTALL_BENCH=1, mosquitto) from Debian's
# packages if they are missing. The logic lives beside the Go helper that embeds it.
exec bash "$(dirname "$0")/../internal/backends/install.sh" "$@"
