//! TrafficSplit `split.smi-spec.io/v1alpha3` (Traefik Mesh). Same fields as the hub.

use super::{Backend, RouteGroupRef};

traffic_split_version!("v1alpha3", {
    /// The root (apex) Service: the name clients call.
    pub service: String,
    /// HTTPRouteGroups whose matches select the requests this split applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteGroupRef>,
    /// The backend Services and their weights.
    pub backends: Vec<Backend>,
});
