//! The Helm chart (`charts/trellis`) as far as Rust knows it:
//!
//! ```text
//! values.rs  Values (serde + JsonSchema) ──> schema.rs ──> charts/trellis/values.schema.json
//!            values.yaml == Values::default()                (`trellis values-schema`)
//! ```
//!
//! Helm validates every install and upgrade against the schema, so a typo or a value of
//! the wrong kind fails `helm install` with the field's path instead of being ignored.

pub mod schema;
pub mod values;

#[cfg(test)]
mod tests;
