# Container image of `lockstep` (the chart's default image).
#
#   docker build -t ghcr.io/lockstep-dev/lockstep:0.1.0 .
#
# Not built in this project's CI: the build machines have no container engine.
# Stage 1 builds the guest components (wasm32-wasip2) the binary embeds, then a
# static musl binary; stage 2 is distroless/static, non-root, nothing else.
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2 x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV LOCKSTEP_COMPONENTS_DIR=/components
RUN make components \
 && cargo build --release --locked -p lockstep --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/lockstep /lockstep

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /lockstep /lockstep
USER 65532:65532
ENTRYPOINT ["/lockstep"]
CMD ["run"]
