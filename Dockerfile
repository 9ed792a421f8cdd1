# syntax=docker/dockerfile:1
#
# The mta image: `mta-api` (default command), `mta-worker` and the `mta` CLI (for `mta keys create`).
#
#   docker build -t mta:latest .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://… -e MTA_STORE=s3://bucket/prefix … mta:latest
#   docker run --rm … mta:latest mta-worker
#
# Needs BuildKit (the default builder of Docker 23 and later) for the cache mount below.
# Checked offline by `.ci/deploy-check` (hadolint).

ARG RUST_VERSION=1.92

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# Dependencies first: the lock file and every workspace member's manifest, with empty targets
# where cargo expects sources, are all `cargo fetch` needs. This layer is rebuilt only when a
# manifest or Cargo.lock changes, not on every source edit. A new workspace member or root target
# needs its line here (.ci/deploy-check checks this against Cargo.toml).
COPY Cargo.toml Cargo.lock ./
COPY shared/Cargo.toml shared/
COPY platform/Cargo.toml platform/
COPY api/Cargo.toml api/
COPY worker/Cargo.toml worker/
COPY bench/Cargo.toml bench/
RUN mkdir -p cli/src shared/src platform/src api/src worker/src bench/src tests \
    && touch cli/src/main.rs cli/src/lib.rs api/src/main.rs worker/src/main.rs tests/main.rs \
             shared/src/lib.rs platform/src/lib.rs api/src/lib.rs worker/src/lib.rs bench/src/main.rs \
    && cargo fetch --locked

# The sources (see .dockerignore), then an offline release build of the three executables.
# `target/` is a BuildKit cache mount, so a rebuild recompiles only what changed; the binaries
# are copied out of it within the same step.
# Images carry no debug info: stripped binaries are a fraction of the size.
COPY . .
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --offline --bin mta-api --bin mta-worker --bin mta \
    && install -D -m 0755 -t /out target/release/mta-api target/release/mta-worker target/release/mta

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# Runtime needs: glibc (in the base image), CA certificates (rustls reads the system roots via
# reqwest/object_store) and curl for HEALTHCHECK. Versions follow the bookworm point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mta \
    && useradd --system --uid 10001 --gid mta --home-dir /var/lib/mta --no-create-home \
               --shell /usr/sbin/nologin mta \
    && install -d -o mta -g mta -m 0750 /var/lib/mta

COPY --from=builder /out/ /usr/local/bin/

# Container defaults (docs/configuration.md); every one can be overridden at run time.
# MTA_DATA_DIR is the scratch directory: give it a writable volume (Kubernetes: an emptyDir).
# TMPDIR points there too, so temporary chunk files land on that volume and not on the root
# file system (which Kubernetes mounts read-only).
# MALLOC_ARENA_MAX: glibc gives each of a process's threads (a dozen in a worker) a malloc arena
# of its own, each keeping the most its threads ever held; two arenas halve a worker's memory
# after a few jobs (docs/operations.md, "Memory per task"). The service binaries set it themselves
# when it is absent, by executing themselves again; set here, no process needs to.
ENV MTA_BIND=0.0.0.0:8080 \
    MTA_WORKER_BIND=0.0.0.0:8081 \
    MTA_INTERNAL_BIND=0.0.0.0:9090 \
    MTA_DATA_DIR=/var/lib/mta \
    TMPDIR=/var/lib/mta \
    MTA_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2

USER 10001:10001
WORKDIR /var/lib/mta
EXPOSE 8080 8081 9090
STOPSIGNAL SIGTERM

# The API answers on 8080, a worker on 8081; whichever process this container runs must be live.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null --max-time 3 http://127.0.0.1:8080/health/live || curl -fsS -o /dev/null --max-time 3 http://127.0.0.1:8081/health/live"]

CMD ["mta-api"]
