//! TrafficTarget `access.smi-spec.io/v1alpha2`: has an optional `destination.port`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Rule, Subject};

traffic_target_version!("v1alpha2", {
    /// The destination ServiceAccount, optionally with a port.
    pub destination: Destination,
    /// The routes allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// The source ServiceAccounts allowed to call the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Subject>,
});

/// A v1alpha2 destination: a ServiceAccount and an optional port.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Kind of the destination: `ServiceAccount`.
    pub kind: String,
    /// Name of the ServiceAccount.
    pub name: String,
    /// Namespace of the ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the destination. v1alpha3 cannot hold it: such objects do not convert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<f64>,
}
