//! Conversions between every served TrafficSplit version and the hub (v1alpha4).
//!
//! v1alpha1 Quantity weights are converted by value and scaled to whole numbers together,
//! so mixed scales keep their ratio (`500m` and `1` become `5` and `10`). The weights as
//! written are kept in an annotation so that converting back gives them again exactly.
//! A field the target version cannot hold (`matches` in v1alpha1/v1alpha2) is an error.

use std::collections::BTreeMap;

use super::{Backend, KIND, v1alpha1, v1alpha2, v1alpha3, v1alpha4};
use crate::ConversionError;
use crate::quantity::Quantity;
use crate::weight::{MAX_WEIGHT, Weight};

/// Annotation holding v1alpha1 weights as written (`{"web-v1": "500m"}`), set on the hub
/// only when the written form differs from the converted whole numbers.
pub const V1ALPHA1_WEIGHTS_ANNOTATION: &str = "split.trellis.dev/v1alpha1-weights";

impl From<v1alpha3::TrafficSplit> for v1alpha4::TrafficSplit {
    fn from(ts: v1alpha3::TrafficSplit) -> Self {
        let spec = v1alpha4::TrafficSplitSpec {
            service: ts.spec.service,
            matches: ts.spec.matches,
            backends: ts.spec.backends,
        };
        Self {
            metadata: ts.metadata,
            spec,
            status: ts.status,
        }
    }
}

impl From<v1alpha4::TrafficSplit> for v1alpha3::TrafficSplit {
    fn from(ts: v1alpha4::TrafficSplit) -> Self {
        let spec = v1alpha3::TrafficSplitSpec {
            service: ts.spec.service,
            matches: ts.spec.matches,
            backends: ts.spec.backends,
        };
        Self {
            metadata: ts.metadata,
            spec,
            status: ts.status,
        }
    }
}

impl From<v1alpha2::TrafficSplit> for v1alpha4::TrafficSplit {
    fn from(ts: v1alpha2::TrafficSplit) -> Self {
        let spec = v1alpha4::TrafficSplitSpec {
            service: ts.spec.service,
            matches: Vec::new(),
            backends: ts.spec.backends,
        };
        Self {
            metadata: ts.metadata,
            spec,
            status: ts.status,
        }
    }
}

impl TryFrom<v1alpha4::TrafficSplit> for v1alpha2::TrafficSplit {
    type Error = ConversionError;

    fn try_from(ts: v1alpha4::TrafficSplit) -> Result<Self, ConversionError> {
        no_matches(&ts, "v1alpha2")?;
        let spec = v1alpha2::TrafficSplitSpec {
            service: ts.spec.service,
            backends: ts.spec.backends,
        };
        Ok(Self {
            metadata: ts.metadata,
            spec,
            status: ts.status,
        })
    }
}

impl TryFrom<v1alpha1::TrafficSplit> for v1alpha4::TrafficSplit {
    type Error = ConversionError;

    fn try_from(ts: v1alpha1::TrafficSplit) -> Result<Self, ConversionError> {
        let weights = whole_weights(&ts.spec.backends)?;
        let mut metadata = ts.metadata;
        let as_written: BTreeMap<&str, &str> = ts
            .spec
            .backends
            .iter()
            .map(|b| (b.service.as_str(), b.weight.0.as_str()))
            .collect();
        let changed = ts
            .spec
            .backends
            .iter()
            .zip(&weights)
            .any(|(b, w)| b.weight.0 != w.to_string());
        if changed {
            let json = serde_json::to_string(&as_written).expect("a map of strings serializes");
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(V1ALPHA1_WEIGHTS_ANNOTATION.to_owned(), json);
        }
        let backends = ts
            .spec
            .backends
            .into_iter()
            .zip(weights)
            .map(|(b, weight)| Backend {
                service: b.service,
                weight,
            })
            .collect();
        let spec = v1alpha4::TrafficSplitSpec {
            service: ts.spec.service,
            matches: Vec::new(),
            backends,
        };
        Ok(Self {
            metadata,
            spec,
            status: ts.status,
        })
    }
}

impl TryFrom<v1alpha4::TrafficSplit> for v1alpha1::TrafficSplit {
    type Error = ConversionError;

    fn try_from(ts: v1alpha4::TrafficSplit) -> Result<Self, ConversionError> {
        no_matches(&ts, "v1alpha1")?;
        let mut metadata = ts.metadata;
        let as_written = metadata
            .annotations
            .as_mut()
            .and_then(|a| a.remove(V1ALPHA1_WEIGHTS_ANNOTATION))
            .and_then(|json| serde_json::from_str::<BTreeMap<String, String>>(&json).ok());
        if metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            metadata.annotations = None;
        }
        let plain: Vec<v1alpha1::Backend> = ts
            .spec
            .backends
            .iter()
            .map(|b| v1alpha1::Backend {
                service: b.service.clone(),
                weight: Quantity::new(b.weight.to_string()),
            })
            .collect();
        // Use the weights as written only while they still describe the hub's weights:
        // another writer may have changed the split since.
        let backends = as_written
            .and_then(|written| restore_written(&plain, &written, &ts.spec.backends))
            .unwrap_or(plain);
        let spec = v1alpha1::TrafficSplitSpec {
            service: ts.spec.service,
            backends,
        };
        Ok(Self {
            metadata,
            spec,
            status: ts.status,
        })
    }
}

fn restore_written(
    plain: &[v1alpha1::Backend],
    written: &BTreeMap<String, String>,
    hub: &[Backend],
) -> Option<Vec<v1alpha1::Backend>> {
    let restored: Vec<v1alpha1::Backend> = plain
        .iter()
        .map(|b| {
            written.get(&b.service).map(|q| v1alpha1::Backend {
                service: b.service.clone(),
                weight: Quantity::new(q.clone()),
            })
        })
        .collect::<Option<_>>()?;
    let same = whole_weights(&restored)
        .ok()?
        .iter()
        .zip(hub)
        .all(|(w, b)| *w == b.weight);
    same.then_some(restored)
}

/// Converts Quantity weights to whole numbers with the same ratios: every weight is
/// multiplied by the smallest power of ten that makes all of them whole.
pub fn whole_weights(backends: &[v1alpha1::Backend]) -> Result<Vec<Weight>, ConversionError> {
    let target = format!("{}/{}", super::GROUP, super::HUB_VERSION);
    let values = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            b.weight.value().map(|d| d.normalized()).map_err(|e| {
                ConversionError::new(
                    KIND,
                    &target,
                    format!("spec.backends[{i}].weight"),
                    e.to_string(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let base = values
        .iter()
        .filter(|d| d.mantissa != 0)
        .map(|d| d.exponent)
        .min()
        .unwrap_or(0)
        .min(0);
    values
        .iter()
        .enumerate()
        .map(|(i, d)| match d.scaled_to(base) {
            Some(w) if w.abs() <= i128::from(MAX_WEIGHT) => Ok(Weight::new(w as f64)),
            _ => Err(ConversionError::new(
                KIND,
                &target,
                format!("spec.backends[{i}].weight"),
                format!(
                    "{} cannot be scaled to a whole number up to {MAX_WEIGHT} together with the \
                     other weights; use weights of similar scale (for example 0-100 or 0-1000)",
                    backends[i].weight
                ),
            )),
        })
        .collect()
}

fn no_matches(ts: &v1alpha4::TrafficSplit, version: &str) -> Result<(), ConversionError> {
    if ts.spec.matches.is_empty() {
        return Ok(());
    }
    Err(ConversionError::new(
        KIND,
        format!("{}/{version}", super::GROUP),
        "spec.matches",
        format!(
            "{version} has no `matches`; this split applies only to matching requests, \
             which only v1alpha3 and v1alpha4 can express"
        ),
    ))
}
