//! `split.smi-spec.io` TrafficSplit: v1alpha1, v1alpha2, v1alpha3 and v1alpha4 (the hub).
//!
//! | version  | weights                  | `matches` |
//! |----------|--------------------------|-----------|
//! | v1alpha1 | Quantity (`500m`, `1`)   | no        |
//! | v1alpha2 | number                   | no        |
//! | v1alpha3 | number                   | yes       |
//! | v1alpha4 | number (hub, storage)    | yes       |

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::weight::Weight;

/// Declares the `TrafficSplit` type of one version: every version shares the group,
/// names, status and printer columns; only the spec fields differ.
macro_rules! traffic_split_version {
    ($version:tt, { $($fields:tt)* }) => {
        /// Splits the traffic sent to a root Service between backend Services by weight,
        /// optionally only for requests that match HTTPRouteGroup matches (A/B testing).
        #[derive(kube::CustomResource, Clone, Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
        #[kube(
            group = "split.smi-spec.io",
            version = $version,
            kind = "TrafficSplit",
            plural = "trafficsplits",
            shortname = "ts",
            namespaced,
            status = "crate::status::Status",
            derive = "PartialEq",
            doc = "TrafficSplit splits the traffic sent to a root Service between backend Services by weight.",
            printcolumn(name = "Service", type_ = "string", json_path = ".spec.service", description = "The root (apex) Service clients call."),
            printcolumn(name = "Backends", type_ = "string", json_path = ".spec.backends[*].service", description = "Backend Services."),
            printcolumn(name = "Weights", type_ = "string", json_path = ".spec.backends[*].weight", description = "Backend weights, in the order of Backends."),
            printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status", description = "Whether Trellis accepted the split."),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct TrafficSplitSpec { $($fields)* }
    };
}

pub mod convert;
pub mod v1alpha1;
pub mod v1alpha2;
pub mod v1alpha3;
pub mod v1alpha4;

pub const GROUP: &str = "split.smi-spec.io";
pub const KIND: &str = "TrafficSplit";
pub const HUB_VERSION: &str = "v1alpha4";
/// Served versions, newest first.
pub const VERSIONS: [&str; 4] = ["v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1"];

/// The hub type: what the rest of Trellis reads.
pub type TrafficSplit = v1alpha4::TrafficSplit;

/// A backend Service of a split and its relative weight.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Name of a Service in the TrafficSplit's namespace that receives a share of the traffic.
    pub service: String,
    /// Relative weight: a whole number >= 0. Backends get weight / sum(weights) of the
    /// requests (1000 and 500 give about 2:1); 0 means no traffic.
    pub weight: Weight,
}

/// A reference to the HTTPRouteGroup whose matches select the requests a split applies to.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteGroupRef {
    /// Kind of the matching group: `HTTPRouteGroup`.
    pub kind: String,
    /// Name of an HTTPRouteGroup in the TrafficSplit's namespace.
    pub name: String,
    /// API group of the referent (`specs.smi-spec.io`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
}
