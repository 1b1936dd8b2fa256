# The registry's image for docker-compose.yml and deploy/kubernetes/. Not built by the tests (no
# Docker engine in CI); kept correct by reading.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --locked --release --bin customer-registry

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 registry \
    && useradd --system --uid 10001 --gid registry --home /var/lib/customer-registry registry \
    && mkdir -p /var/lib/customer-registry && chown registry:registry /var/lib/customer-registry
COPY --from=build /src/target/release/customer-registry /usr/local/bin/customer-registry
# The user `registry` by number, fixed: Kubernetes' runAsNonRoot can check a numeric user, and the
# compose file and deploy/kubernetes/ give files and volumes to uid and gid 10001.
USER 10001:10001
ENV REGISTRY_LISTEN=0.0.0.0:8080 \
    REGISTRY_DATA_DIR=/var/lib/customer-registry
VOLUME /var/lib/customer-registry
EXPOSE 8080
ENTRYPOINT ["customer-registry"]
CMD ["serve"]
