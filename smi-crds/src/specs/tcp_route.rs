//! TCPRoute: TCP traffic by destination port. v1alpha3 has no fields (all ports);
//! v1alpha4 has `matches.ports` (`[]` means all ports).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "TCPRoute";
pub const VERSIONS: [&str; 2] = ["v1alpha4", "v1alpha3"];

/// Ports that select TCP or UDP traffic.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortMatch {
    /// Name of the match (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Destination port numbers (1-65535). An empty list means every port.
    pub ports: Vec<i64>,
}

pub mod v1alpha4 {
    use super::PortMatch;

    /// TCP traffic to some ports of a destination.
    #[derive(
        kube::CustomResource,
        Clone,
        Debug,
        serde::Deserialize,
        serde::Serialize,
        schemars::JsonSchema,
        PartialEq,
    )]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha4",
        kind = "TCPRoute",
        plural = "tcproutes",
        shortname = "tr",
        namespaced,
        status = "crate::status::Status",
        derive = "PartialEq",
        doc = "TCPRoute describes TCP traffic by destination port.",
        printcolumn(
            name = "Ports",
            type_ = "string",
            json_path = ".spec.matches.ports",
            description = "Destination ports; empty means all."
        ),
        printcolumn(
            name = "Accepted",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
            description = "Whether Trellis accepted the route."
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct TCPRouteSpec {
        /// The ports this route selects.
        pub matches: PortMatch,
    }
}

pub mod v1alpha3 {
    /// TCP traffic to a destination, on every port.
    #[derive(
        kube::CustomResource,
        Clone,
        Debug,
        Default,
        serde::Deserialize,
        serde::Serialize,
        schemars::JsonSchema,
        PartialEq,
    )]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha3",
        kind = "TCPRoute",
        plural = "tcproutes",
        shortname = "tr",
        namespaced,
        status = "crate::status::Status",
        derive = "PartialEq",
        doc = "TCPRoute describes TCP traffic (v1alpha3: every port).",
        printcolumn(
            name = "Accepted",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
            description = "Whether Trellis accepted the route."
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )]
    #[serde(deny_unknown_fields)]
    pub struct TCPRouteSpec {}
}
