# syntax=docker/dockerfile:1
# The kiln binary in a small Debian image. Build from the repository root:
#   docker build -f docker/kiln.Dockerfile -t kiln-serve .                  # kiln serve, with a health check
#   docker build -f docker/kiln.Dockerfile --target runtime -t kiln .    # the plain kiln CLI
# (docker-compose.yml does this for the kiln-serve service.) Never built on the machine this was written on:
# see docker/README.md.

# ---- builder: the same toolchain as local builds (Rust 1.95 = workspace rust-version, Debian 12) ----
FROM rust:1.95-bookworm AS builder

# clang + libclang-dev: bindgen for lightgbm3; clang + libomp-dev: LightGBM and XGBoost are compiled by clang with
# LLVM's OpenMP runtime (.cargo/config.toml, crates/kiln-xgboost-sys/build.rs). CMake >= 3.28 for LightGBM 4.7 comes
# from PyPI (Debian 12 has 3.25), pinned to the version of tests/requirements.txt; XGBoost 3.2 (kiln-xgboost-sys,
# built from the sdist in crates/) needs >= 3.18.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang libclang-dev libomp-dev python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m pip install --no-cache-dir --break-system-packages cmake==4.4.4 \
 && cmake --version

WORKDIR /src
# Only what the build reads: the workspace manifest and lock, cargo's config, the crates.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY crates crates

# The cache mounts keep the registry and the target directory between builds (the first build compiles
# LightGBM, XGBoost and polars: about 20 minutes on 2 cores). The binary is copied out of the cached target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kiln-cli \
 && install -m 0755 target/release/kiln /usr/local/bin/kiln

# ---- runtime: glibc of Debian 12 like the builder; libomp5 (LLVM's) is OpenMP for LightGBM and XGBoost ----
FROM debian:bookworm-slim AS runtime

# ldd of a local release build lists libstdc++6, libomp5, libgcc-s1 and libc6 only (no OpenSSL).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libomp5 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/kiln --shell /usr/sbin/nologin kiln \
 && mkdir -p /app \
 && chown kiln:kiln /app

COPY --from=builder /usr/local/bin/kiln /usr/local/bin/kiln
# The experiment files and the shipped datasets (5 MB, licences in data/README.md), so `kiln train` works in the
# container too; kiln serve needs neither.
COPY conf /app/conf
COPY data /app/data

# Fails the build if a shared library is missing from this image.
RUN kiln --version

USER kiln
WORKDIR /app
ENV MLFLOW_DISABLE_TELEMETRY=true
EXPOSE 8080
ENTRYPOINT ["kiln"]
CMD ["--help"]

# ---- serve: the runtime image running `kiln serve` (the default target; `--target runtime` gives the plain CLI) ----
FROM runtime AS serve

# Docker's own health check: /ready answers 200 once the model is loaded (kiln serve listens only after that). No
# curl in the image: a bare HTTP/1.0 GET through bash's /dev/tcp.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# The registry and credentials come from the environment (MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN or
# MLFLOW_TRACKING_USERNAME/PASSWORD, KILN_API_KEYS); the model from the command, e.g.
#   docker run -e MLFLOW_TRACKING_URI=http://mlflow:5000 -p 8080:8080 kiln-serve serve --model models:/churn@production --host 0.0.0.0
CMD ["serve", "--model", "models:/eurusd@production", "--host", "0.0.0.0", "--port", "8080"]
