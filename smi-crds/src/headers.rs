//! HTTPRouteGroup header matches.
//!
//! The upstream CRD types `headers` as a list of single-key maps
//! (`[{user-agent: ".*Firefox.*"}]`); the SMI prose and smi-sdk-go use a plain map
//! (`{user-agent: ".*Firefox.*"}`). Trellis reads both and always writes the list form.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// One header condition: the header `name` must be present and its whole value must
/// match the `value` regex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    pub value: String,
}

/// Header conditions of one HTTP match, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMatches(pub Vec<HeaderMatch>);

impl HeaderMatches {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &HeaderMatch> {
        self.0.iter()
    }
}

impl FromIterator<(String, String)> for HeaderMatches {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(name, value)| HeaderMatch { name, value })
                .collect(),
        )
    }
}

impl Serialize for HeaderMatches {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for m in &self.0 {
            seq.serialize_element(&BTreeMap::from([(&m.name, &m.value)]))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for HeaderMatches {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = HeaderMatches;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of {header: regex} maps, or a map of header: regex")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Pairs(pairs)) = seq.next_element::<Pairs>()? {
                    out.extend(pairs);
                }
                Ok(out.into_iter().collect())
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let Pairs(pairs) = Pairs::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(pairs.into_iter().collect())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderMatches::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The entries of one map, in the order written.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header: regex")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    out.push(entry);
                }
                Ok(Pairs(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Accept-both needs a schema that allows both an array and an object; a structural
/// schema expresses that with `x-kubernetes-preserve-unknown-fields` and no `type`.
/// Trellis' validation checks the shape and every regex.
impl JsonSchema for HeaderMatches {
    fn schema_name() -> Cow<'static, str> {
        "HeaderMatches".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firefox() -> HeaderMatches {
        HeaderMatches(vec![
            HeaderMatch {
                name: "user-agent".into(),
                value: ".*Firefox.*".into(),
            },
            HeaderMatch {
                name: "x-canary".into(),
                value: "true".into(),
            },
        ])
    }

    #[test]
    fn reads_the_list_of_maps_form() {
        let h: HeaderMatches =
            serde_json::from_str(r#"[{"user-agent": ".*Firefox.*"}, {"x-canary": "true"}]"#)
                .unwrap();
        assert_eq!(h, firefox());
    }

    #[test]
    fn reads_the_map_form() {
        let h: HeaderMatches =
            serde_json::from_str(r#"{"user-agent": ".*Firefox.*", "x-canary": "true"}"#).unwrap();
        assert_eq!(h, firefox());
    }

    #[test]
    fn writes_the_list_form() {
        assert_eq!(
            serde_json::to_value(firefox()).unwrap(),
            serde_json::json!([{"user-agent": ".*Firefox.*"}, {"x-canary": "true"}])
        );
    }

    #[test]
    fn a_non_string_value_is_an_error() {
        assert!(serde_json::from_str::<HeaderMatches>(r#"{"x": 1}"#).is_err());
    }
}
