//! TrafficSplit `split.smi-spec.io/v1alpha1` (Argo Rollouts, Flagger for Linkerd):
//! weights are Kubernetes Quantities (`500m`, `1`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

traffic_split_version!("v1alpha1", {
    /// The root (apex) Service: the name clients call.
    pub service: String,
    /// The backend Services and their weights.
    pub backends: Vec<Backend>,
});

/// A backend with a Quantity weight.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Name of a Service in the TrafficSplit's namespace.
    pub service: String,
    /// Relative weight as a Quantity: `500m` is 0.5, `1` is 1. Converted by value.
    pub weight: Quantity,
}
