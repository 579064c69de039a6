# syntax=docker/dockerfile:1
# lineage in a container: compiled in the Rust image, run from a small Debian image as a non-root
# user, SQLite data on the /data volume.
#
#   docker build -t lineage .
#   docker run -p 8080:8080 -v lineage-data:/data \
#     -e LINEAGE_ISSUER=https://auth.example.com -e LINEAGE_KEY_SECRET=… lineage
#
# The image listens on 0.0.0.0:8080. With a plain-http issuer (trying it out locally) add
# -e LINEAGE_INSECURE_HTTP=true; in production terminate TLS in front and use an https issuer.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# SQLite, libpq and OpenSSL are compiled from bundled sources: no -dev packages needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lineage \
    && install -m 0755 target/release/lineage /usr/local/bin/lineage

FROM debian:bookworm-slim
# curl is for the health check only. Unpinned on purpose: the image should get Debian's security
# updates whenever it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin lineage \
    && mkdir -p /data \
    && chown lineage:lineage /data
COPY --from=build /usr/local/bin/lineage /usr/local/bin/lineage
USER 10001:10001
WORKDIR /data
ENV LINEAGE_BIND=0.0.0.0:8080 \
    LINEAGE_DATABASE_URL=sqlite:///data/lineage.db
VOLUME ["/data"]
EXPOSE 8080
# Checks the same port as LINEAGE_BIND above; change both together.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["lineage"]
CMD ["serve"]
