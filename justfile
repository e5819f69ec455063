# Everyday recipes. `just --list` shows them.

# Run every test (the same command CI runs).
test:
    cargo test --workspace

# Format, lint, test and check generated files, as CI does.
ci:
    bash .ci/run

# Regenerate the CRDs in the Helm chart from the Rust types.
crds:
    cargo run -p trellis-operator -- crds --out charts/trellis/crds

# Check the CRDs in the chart match the Rust types.
crds-check:
    cargo run -p trellis-operator -- crds --check charts/trellis/crds

# Regenerate the Helm chart's values.schema.json from operator/src/chart/values.rs.
values-schema:
    cargo run -p trellis-operator -- values-schema --out charts/trellis/values.schema.json

# Real-cluster e2e: kind or k3d, docker or podman; builds the images, installs the chart,
# applies the GitOps examples and runs the local e2e's scenarios (docs/e2e-kind.md).
# The project's CI cannot run it (no container runtime there).
e2e-kind *args:
    bash e2e/kind/run.sh {{args}}

# Validate a tree of manifests (default: the examples).
validate path="gitops-examples":
    cargo run -p trellis-operator -- validate {{path}}

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Load benchmark: direct vs trellis-proxy vs HAProxy, open loop (docs/benchmarks.md).
# `just bench --quick` for a short run. e2e/bench/run.sh also installs HAProxy if missing.
bench *args:
    cargo build --release -p trellis-proxy -p trellis-bench
    cargo run --release -p trellis-bench -- {{args}}

# Control plane at scale: 10,000 Services, 100,000 endpoints, 2,000 proxies subscribed over
# gRPC (docs/benchmarks.md, "Control plane at scale"). `just bench-control-plane --quick`
# for a small mesh; `--json FILE` also saves the figures.
bench-control-plane *args:
    cargo bench -p trellis-operator --bench control_plane -- {{args}}
