#!/usr/bin/env bash
# The load benchmark in one command (docs/benchmarks.md): installs HAProxy when it is
# missing, builds trellis-proxy and trellis-bench in release mode, and runs the benchmark.
# Arguments go to trellis-bench, e.g. `e2e/bench/run.sh --quick` or `--json results.json`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v haproxy >/dev/null 2>&1; then
  echo "==> haproxy is missing: apt-get install -y haproxy"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq haproxy
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> cargo build --release -p trellis-proxy -p trellis-bench"
cargo build --release -p trellis-proxy -p trellis-bench
exec "$CARGO_TARGET_DIR/release/trellis-bench" --proxy-bin "$CARGO_TARGET_DIR/release/trellis-proxy" "$@"
