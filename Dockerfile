# syntax=docker/dockerfile:1
#
# pipefy-exporter container image.
#
#   docker build -t pipefy-exporter --build-arg PIPEFY_EXPORTER_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 10151:10151 pipefy-exporter --demo
#   docker run --rm -p 10151:10151 \
#     -v "$PWD/pipefy-exporter.yml:/etc/pipefy-exporter/pipefy-exporter.yml:ro" \
#     -v "$PWD/pipefy-token:/run/secrets/pipefy-token:ro" pipefy-exporter
#
# Final stage: gcr.io/distroless/cc-debian12:nonroot, chosen over `scratch` + a static
# musl build because:
#   - a default (glibc) Rust build runs on it as is: it has glibc, libgcc_s and CA
#     certificates, and nothing else: no shell, no package manager;
#   - the TLS stack (reqwest + rustls + ring, webpki roots compiled in) needs no OpenSSL,
#     but a musl build needs a musl C toolchain for ring and musl's allocator is slow
#     under a multi-threaded tokio runtime; the size difference is ~20 MB;
#   - its `nonroot` user (uid/gid 65532) and /etc/passwd entry come with it.
# The exporter writes nothing to disk, so the container runs with a read-only root
# filesystem (docker run --read-only, readOnlyRootFilesystem in Kubernetes).

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# `.git` is not in the build context (.dockerignore): pass the revision for
# pipefy_exporter_build_info{revision} and --version (build.rs reads this variable).
ARG PIPEFY_EXPORTER_REVISION=unknown
ENV PIPEFY_EXPORTER_REVISION=${PIPEFY_EXPORTER_REVISION} \
    CARGO_TERM_COLOR=never
COPY . .
# The registry and target caches survive between builds (BuildKit cache mounts), so a
# code change does not download and rebuild every dependency. The binary is copied out
# of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin pipefy-exporter \
    && install -D -m 0755 target/release/pipefy-exporter /out/pipefy-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
# org.opencontainers.image.source/version/revision are added by the release workflow
# (docker/metadata-action, from the repository it runs in), not written here.
LABEL org.opencontainers.image.title="pipefy-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Pipefy plan limits, AI credits and token billing attribution" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/pipefy-exporter /usr/local/bin/pipefy-exporter
# Mount the configuration here and the secrets under /run/secrets (see the config's
# pipefy.auth.token_file or service_account.client_secret_file).
WORKDIR /etc/pipefy-exporter
# 65532 is distroless's "nonroot"; numeric so that Kubernetes can check runAsNonRoot.
USER 65532:65532
EXPOSE 10151
# No HEALTHCHECK: the image has no shell or HTTP client to run one. Orchestrators probe
# /-/healthy and /-/ready over HTTP instead (see deploy/helm and deploy/docker-compose.yml).
ENTRYPOINT ["/usr/local/bin/pipefy-exporter"]
CMD ["--config.file=/etc/pipefy-exporter/pipefy-exporter.yml"]
