# syntax=docker/dockerfile:1
#
# Latchkey: one static binary on a distroless base, as a non-root user.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t latchkey .
#   docker run --rm latchkey version
#
# BuildKit is required (cache mounts). Multi-platform builds cross-compile in
# the build stage: docker buildx build --platform linux/amd64,linux/arm64 .
#
# cmd/latchkey/dockerfile_test.go builds the binary with this file's build
# stage (its ENV, ARG defaults and the `go build` command, read from here)
# and checks that it is static, stripped and answers `version`: keep the
# build a single `go build` command in one RUN.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/latchkey ./cmd/latchkey
# The state directory, owned by the runtime user, so that a new named volume
# mounted there starts out writable (the runtime image has no shell).
RUN mkdir -p /out/var/lib/latchkey /out/etc/latchkey

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="latchkey" \
      org.opencontainers.image.description="Self-service password reset for Active Directory and OpenLDAP" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/latchkey /latchkey
COPY --from=build --chown=65532:65532 /out/var/lib/latchkey /var/lib/latchkey
COPY --from=build /out/etc/latchkey /etc/latchkey
USER 65532:65532
# SQLite store (store.dsn file:/var/lib/latchkey/latchkey.db).
VOLUME ["/var/lib/latchkey"]
# server.listen must be ":8080" (not the loopback default) in a container.
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/latchkey"]
CMD ["serve", "--config", "/etc/latchkey/latchkey.yaml"]
