# syntax=docker/dockerfile:1

FROM rust:1-bookworm AS builder
WORKDIR /src

# Copy only what the build reads, so the host's target/ directory and the key
# files under .outbound/ stay out of the image. tests/ holds the api test
# target that the outbound crate's manifest declares.
# The binary embeds migrations/ at build time, so the runtime image needs no copy.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
COPY tests ./tests

# The cache mounts keep downloaded crates and compiled dependencies between
# builds. The target/ directory of a cache mount is not part of the image, so
# the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p outbound \
    && cp target/release/outbound /usr/local/bin/outbound

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 outbound \
    && useradd --system --uid 10001 --gid outbound --no-create-home --shell /usr/sbin/nologin outbound

COPY --from=builder /usr/local/bin/outbound /usr/local/bin/outbound

USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/outbound"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
