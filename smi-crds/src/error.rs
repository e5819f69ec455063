use thiserror::Error;

/// A conversion between two versions of one kind that cannot be done without losing a field.
///
/// Trellis never drops a field silently: when the target version cannot hold a value,
/// the conversion fails and says which field and what to do instead.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("cannot convert {kind} to {target}: {field}: {message}")]
pub struct ConversionError {
    /// The kind being converted, e.g. `TrafficSplit`.
    pub kind: &'static str,
    /// The target `apiVersion`, e.g. `split.smi-spec.io/v1alpha2`.
    pub target: String,
    /// The field path in the source object, e.g. `spec.matches`.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ConversionError {
    pub(crate) fn new(
        kind: &'static str,
        target: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            target: target.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}
