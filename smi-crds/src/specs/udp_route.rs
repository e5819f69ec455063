//! UDPRoute: UDP traffic by destination port (v1alpha4 only).

pub const KIND: &str = "UDPRoute";
pub const VERSIONS: [&str; 1] = ["v1alpha4"];

pub mod v1alpha4 {
    use crate::specs::tcp_route::PortMatch;

    /// UDP traffic to some ports of a destination.
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
        kind = "UDPRoute",
        plural = "udproutes",
        shortname = "ur",
        namespaced,
        status = "crate::status::Status",
        derive = "PartialEq",
        doc = "UDPRoute describes UDP traffic by destination port.",
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
    pub struct UDPRouteSpec {
        /// The ports this route selects.
        pub matches: PortMatch,
    }
}
