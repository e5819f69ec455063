//! The Helm chart's values (`charts/trellis/values.yaml`) as Rust types.
