//! Backend weights as the wire carries them: a JSON number (`type: number` in the
//! upstream CRDs). Weights are relative whole numbers; validation rejects fractions and
//! negatives with a message instead of failing the parse, so a user sees the field.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest weight Trellis accepts.
pub const MAX_WEIGHT: u32 = u32::MAX;

/// A backend weight as written in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Weight(f64);

impl Weight {
    pub fn new(value: f64) -> Self {
        Self(value)
    }

    pub fn value(self) -> f64 {
        self.0
    }

    /// The weight as a whole number, when it is one and in `0..=MAX_WEIGHT`.
    pub fn whole(self) -> Option<u32> {
        let v = self.0;
        (v.fract() == 0.0 && (0.0..=f64::from(MAX_WEIGHT)).contains(&v)).then_some(v as u32)
    }
}

impl From<u32> for Weight {
    fn from(value: u32) -> Self {
        Self(f64::from(value))
    }
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole numbers are written as integers (`50`, not `50.0`) so that Git diffs and
        // ArgoCD comparisons see what the user wrote.
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            serializer.serialize_i64(self.0 as i64)
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        f64::deserialize(deserializer).map(Weight)
    }
}

impl JsonSchema for Weight {
    fn schema_name() -> Cow<'static, str> {
        "Weight".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_weights_are_written_as_integers() {
        assert_eq!(serde_json::to_string(&Weight::from(50)).unwrap(), "50");
        assert_eq!(serde_json::to_string(&Weight::new(0.5)).unwrap(), "0.5");
    }

    #[test]
    fn whole_rejects_fractions_and_negatives() {
        assert_eq!(Weight::new(90.0).whole(), Some(90));
        assert_eq!(Weight::new(0.5).whole(), None);
        assert_eq!(Weight::new(-1.0).whole(), None);
    }
}
