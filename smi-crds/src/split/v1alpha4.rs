//! TrafficSplit `split.smi-spec.io/v1alpha4`: the hub (storage) version.

use super::{Backend, RouteGroupRef};

traffic_split_version!("v1alpha4", {
    /// The root (apex) Service: the name clients call. A short name (`web`) or
    /// `web.<namespace>.svc.<cluster domain>`, in the TrafficSplit's namespace.
    pub service: String,
    /// HTTPRouteGroups whose matches select the requests this split applies to; other
    /// requests go to the root Service itself. Omit to split every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteGroupRef>,
    /// The backend Services and their weights.
    pub backends: Vec<Backend>,
});
