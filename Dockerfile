# syntax=docker/dockerfile:1
# A small static image: the binary (default mappers embedded) on scratch,
# running as an unprivileged user. Build for the host's architecture:
#   docker build -t kubectl-qualys-respond .
# or for another: docker buildx build --platform linux/arm64 -t … .

FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build
ARG TARGETARCH
RUN case "$TARGETARCH" in \
        amd64) echo x86_64-unknown-linux-musl > /target ;; \
        arm64) echo aarch64-unknown-linux-musl > /target ;; \
        *) echo "unsupported architecture $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
 && rustup target add wasm32-wasip2 "$(cat /target)"
WORKDIR /src
COPY . .
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
RUN cargo build --locked --release --bin kubectl-qualys_respond --target "$(cat /target)" \
 && cp "target/$(cat /target)/release/kubectl-qualys_respond" /kubectl-qualys_respond

FROM scratch
COPY --from=build /kubectl-qualys_respond /kubectl-qualys_respond
COPY LICENSE /LICENSE
# The compiled-mapper cache goes to the pod's writable /tmp (install mounts an emptyDir).
ENV QUALYS_RESPOND_CACHE_DIR=/tmp/cache
USER 65532:65532
ENTRYPOINT ["/kubectl-qualys_respond"]
