# syntax=docker/dockerfile:1
#
# The image-prefetcher image: one static-enough binary on a distroless base, run as
#   /image-prefetcher fetch|sleep|aggregate-metrics [flags]
#
#   docker build -t ghcr.io/x/image-prefetcher:v0.1.0 .
#
# Build stage: `deno task compile`, the same command as outside Docker, so the permissions baked
# into the binary are the ones of deno.json's compile task (read, write, env, net, the host name,
# and run for kubelet credential provider plugins, given up at start by every process that has
# none to run; no ffi, no other sys). The .proto files need no --include: lib/ imports them
# as text modules (`with { type: "text" }`), so they are embedded like code and found the same
# way under `deno run` and in the compiled binary.
ARG DENO_VERSION=2.9.6

FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
# Dependencies first, in a layer of their own, so a source change does not download them again.
# --frozen: fail if deno.lock does not match, rather than build with other versions.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY cmd/ cmd/
COPY lib/ lib/
COPY proto/ proto/
RUN deno task compile \
 && ./image-prefetcher --version

# Runtime stage: glibc (deno compile binaries need it; so do host credential provider plugins
# built with cgo), CA certificates (Go plugins read them) and nothing else: no shell, no package
# manager. Pin it by digest in CI (cc-debian12:nonroot@sha256:…) for reproducible builds.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/image-prefetcher /image-prefetcher
# Numeric, so the kubelet can check runAsNonRoot; fetch's init container runs as 0 by its
# securityContext, to reach the root-owned CRI socket.
USER 65532:65532
ENTRYPOINT ["/image-prefetcher"]
CMD ["--help"]
