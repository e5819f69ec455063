//! `access.smi-spec.io` TrafficTarget: v1alpha2 and v1alpha3 (the hub).
//!
//! v1alpha2 has an optional `destination.port` and optional `rules`/`sources`; v1alpha3
//! dropped the port (ports are expressed with TCPRoute rules) and added UDPRoute rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares the `TrafficTarget` type of one version.
macro_rules! traffic_target_version {
    ($version:tt, { $($fields:tt)* }) => {
        /// Allows traffic from source ServiceAccounts to a destination ServiceAccount,
        /// optionally only for some routes (HTTPRouteGroup matches, TCPRoute/UDPRoute ports).
        #[derive(kube::CustomResource, Clone, Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
        #[kube(
            group = "access.smi-spec.io",
            version = $version,
            kind = "TrafficTarget",
            plural = "traffictargets",
            shortname = "tt",
            namespaced,
            status = "crate::status::Status",
            derive = "PartialEq",
            doc = "TrafficTarget allows traffic from source ServiceAccounts to a destination ServiceAccount.",
            printcolumn(name = "Destination", type_ = "string", json_path = ".spec.destination.name", description = "Destination ServiceAccount."),
            printcolumn(name = "Sources", type_ = "string", json_path = ".spec.sources[*].name", description = "Source ServiceAccounts."),
            printcolumn(name = "Rules", type_ = "string", json_path = ".spec.rules[*].name", description = "Route rules (HTTPRouteGroup, TCPRoute, UDPRoute names)."),
            printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status", description = "Whether Trellis accepted the target."),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct TrafficTargetSpec { $($fields)* }
    };
}

pub mod convert;
pub mod v1alpha2;
pub mod v1alpha3;

pub const GROUP: &str = "access.smi-spec.io";
pub const KIND: &str = "TrafficTarget";
pub const HUB_VERSION: &str = "v1alpha3";
pub const VERSIONS: [&str; 2] = ["v1alpha3", "v1alpha2"];

/// The hub type.
pub type TrafficTarget = v1alpha3::TrafficTarget;

/// The only identity kind SMI defines.
pub const SERVICE_ACCOUNT: &str = "ServiceAccount";

/// Rule kinds.
pub mod rule_kinds {
    pub const HTTP_ROUTE_GROUP: &str = "HTTPRouteGroup";
    pub const TCP_ROUTE: &str = "TCPRoute";
    pub const UDP_ROUTE: &str = "UDPRoute";
}

/// A workload identity: a ServiceAccount.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Kind of the identity: `ServiceAccount`.
    pub kind: String,
    /// Name of the ServiceAccount.
    pub name: String,
    /// Namespace of the ServiceAccount; defaults to the TrafficTarget's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The routes a TrafficTarget allows.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Kind of the route resource: `HTTPRouteGroup`, `TCPRoute` or `UDPRoute`.
    pub kind: String,
    /// Name of the route resource, in the TrafficTarget's namespace.
    pub name: String,
    /// For HTTPRouteGroup rules: the names of the group's matches that are allowed.
    /// Omit to allow every match of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
}
