//! TrafficSplit `split.smi-spec.io/v1alpha2` (OSM, Flagger for OSM): no `matches`.

use super::Backend;

traffic_split_version!("v1alpha2", {
    /// The root (apex) Service: the name clients call.
    pub service: String,
    /// The backend Services and their weights.
    pub backends: Vec<Backend>,
});
