#!/usr/bin/env bash
# Builds release binaries of switchboard: static (CGO_ENABLED=0), -trimpath (no paths of
# this machine inside), the version and the commit stamped with -ldflags, so that
# `switchboard version` prints them (internal/version).
#
#   scripts/release.sh [VERSION]
#
# VERSION defaults to $VERSION, then `git describe --tags --always --dirty`, then "dev".
# COMMIT defaults to `git rev-parse HEAD` ("unknown" outside a git work tree, as in a
# Docker build). OUT is the output directory (dist); PLATFORMS the GOOS/GOARCH pairs
# ("linux/amd64 linux/arm64"). It writes OUT/switchboard-VERSION-GOOS-GOARCH and
# OUT/SHA256SUMS, and prints each binary's path. The Dockerfile builds with this script.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
out=${OUT:-dist}
platforms=${PLATFORMS:-linux/amd64 linux/arm64}
case "$version$commit" in
*[!A-Za-z0-9._+-]*)
	echo "release: version $version and commit $commit may hold only letters, digits and . _ + -" >&2
	exit 2
	;;
esac

pkg=github.com/switchboard-mqtt/switchboard/internal/version
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit"
mkdir -p "$out"
names=()
for p in $platforms; do
	goos=${p%/*}
	goarch=${p#*/}
	name="switchboard-$version-$goos-$goarch"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$out/$name" ./cmd/switchboard
	names+=("$name")
	echo "$out/$name"
done
(cd "$out" && sha256sum "${names[@]}" >SHA256SUMS)
