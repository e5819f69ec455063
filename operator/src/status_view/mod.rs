//! What `trellis status` prints: the operator's `/status` JSON (see
//! [`crate::admin::Admin::status`]) in, text out. Pure: fetching it is the CLI's job
//! (`cli/status.rs`).
//!
//! ```text
//! /status JSON --render(Table)--> sections: summary, SOURCES, RESOURCES, WORKLOADS, PROXIES
//!              --render(Json)---> the same JSON, pretty
//!              --render(Yaml)---> the same data as YAML
//! ```
//!
//! - [`sections`]: the table view, one aligned table per subject.
//! - [`table`]: aligned columns, `(none)` for an empty table.

mod sections;
pub mod table;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use sections::short_revision;

/// How to print the status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables for people (the default).
    #[default]
    Table,
    /// The `/status` JSON, pretty-printed.
    Json,
    /// The `/status` data as YAML.
    Yaml,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the status could not be written as YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// The status as text in `format`, ending with a newline.
pub fn render(status: &Value, format: Format) -> Result<String, RenderError> {
    Ok(match format {
        Format::Table => sections::render(status),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(status).expect("JSON values serialize");
            text.push('\n');
            text
        }
        Format::Yaml => {
            let mut text = serde_saphyr::to_string(status)?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
    })
}
