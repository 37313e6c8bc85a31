# syntax=docker/dockerfile:1
#
# tailcast container image: a static (musl) binary on an empty base.
#
#   docker build -t tailcast .
#   docker run --rm -p 8000:8000 tailcast                     # the demo
#   docker run --rm -p 8000:8000 -v /var/log:/logs:ro tailcast serve syslog=/logs/syslog
#
# Stage 1 builds with the Rust toolchain; the final image holds only the
# binary, /etc/passwd and /etc/group naming the non-root user, /tmp (the
# demo writes its log there) and /data (a volume, owned by that user).
# No shell, no curl: the HEALTHCHECK is `tailcast health`, which asks
# /health on the address the server listens on (TAILCAST_ADDR; https when
# TAILCAST_TLS_CERT is set).

ARG RUST_VERSION=1.85
ARG TARGET=x86_64-unknown-linux-musl

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGET
# ring (rustls) compiles C for the target: musl-gcc comes with musl-tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$TARGET"
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target "$TARGET" -p tailcast --bin tailcast \
 && mkdir -p /rootfs/etc /rootfs/tmp /rootfs-data/data \
 && cp "target/$TARGET/release/tailcast" /rootfs/tailcast \
 && echo 'tailcast:x:65532:65532:tailcast:/data:/nonexistent' > /rootfs/etc/passwd \
 && echo 'tailcast:x:65532:' > /rootfs/etc/group \
 && chmod 1777 /rootfs/tmp \
 && chmod 0700 /rootfs-data/data

FROM scratch
# Whole directories are copied as entries of a parent, so that their own
# mode (1777 for /tmp) and owner (the runtime user for /data) are kept:
# COPY of a directory itself would create it afresh, 0755 and root's.
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs-data/ /
USER 65532:65532
# Listen on every interface of the container; `tailcast health` asks the
# same port on loopback. /data is the volume for the write-ahead log: run
# with TAILCAST_DATA_DIR=/data (deploy/compose.yaml does) to keep ids,
# history and file positions across restarts. It is not set here because
# cluster nodes (--redis) must not have it: the two are refused together.
ENV TAILCAST_ADDR=0.0.0.0:8000
VOLUME ["/data"]
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/tailcast", "health", "--timeout", "2s"]
ENTRYPOINT ["/tailcast"]
CMD ["serve"]
