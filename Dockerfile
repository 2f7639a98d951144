# A static switchboard binary on an empty image: no shell, no libc, no package manager;
# it runs as an unprivileged user. Build (VERSION and COMMIT are stamped into the binary,
# `switchboard version` prints them):
#
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t switchboard .
#
# Run a role: `docker run switchboard node --id node-1 ...` (deploy/compose/docker-compose.yml
# runs a whole cluster). Every flag has a SWITCHBOARD_* environment variable.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# The release build: CGO_ENABLED=0 -trimpath -ldflags "-X ...Version -X ...Commit".
RUN OUT=/out PLATFORMS="${TARGETOS}/${TARGETARCH}" COMMIT="${COMMIT}" scripts/release.sh "${VERSION}" \
	&& mv "/out/switchboard-${VERSION}-${TARGETOS}-${TARGETARCH}" /out/switchboard \
	&& mkdir -p /out/data

FROM scratch
# CA certificates, for TLS to Redis, ZooKeeper's peers or anything with a public certificate.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# The node's --data-dir (free-space check) and `up`'s data: writable by the user below.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
# nonroot (65532), as in distroless: no name needed, there is no /etc/passwd.
USER 65532:65532
# MQTT, node internal, node admin (/healthz, /metrics), router API, monitor admin.
EXPOSE 1883 7883 9883 8080 9884
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["--help"]
