//! HTTPRouteGroup: named HTTP matches (path regex, methods, headers) that TrafficTargets
//! allow and TrafficSplits select. v1alpha3 and v1alpha4 have the same fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::headers::HeaderMatches;

pub const KIND: &str = "HTTPRouteGroup";
pub const VERSIONS: [&str; 2] = ["v1alpha4", "v1alpha3"];

/// One named HTTP match. All criteria present must hold; separate matches are OR-ed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    /// Name of the match, referenced from TrafficTarget rules. Unique within the group.
    pub name: String,
    /// Regular expression (RE2 syntax) matched against the request path from its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// HTTP methods (`GET`, `POST`, ...); `*` or omitted means any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header conditions: each header must be present and its whole value must match the
    /// regex. Written as a list of single-key maps (`- user-agent: ".*Firefox.*"`); a map
    /// (`user-agent: ".*Firefox.*"`) is accepted too.
    #[serde(default, skip_serializing_if = "HeaderMatches::is_empty")]
    pub headers: HeaderMatches,
}

macro_rules! http_route_group_version {
    ($version:ident, $name:literal) => {
        pub mod $version {
            use super::HttpMatch;

            /// Named HTTP matches that TrafficTargets allow and TrafficSplits select.
            #[derive(kube::CustomResource, Clone, Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
            #[kube(
                group = "specs.smi-spec.io",
                version = $name,
                kind = "HTTPRouteGroup",
                plural = "httproutegroups",
                shortname = "htr",
                namespaced,
                status = "crate::status::Status",
                derive = "PartialEq",
                doc = "HTTPRouteGroup describes HTTP/1 and HTTP/2 traffic as named matches.",
                printcolumn(name = "Matches", type_ = "string", json_path = ".spec.matches[*].name", description = "Names of the matches."),
                printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status", description = "Whether Trellis accepted the group."),
                printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
            )]
            #[serde(rename_all = "camelCase", deny_unknown_fields)]
            pub struct HTTPRouteGroupSpec {
                /// The named matches of this group.
                pub matches: Vec<HttpMatch>,
            }
        }
    };
}

http_route_group_version!(v1alpha4, "v1alpha4");
http_route_group_version!(v1alpha3, "v1alpha3");
