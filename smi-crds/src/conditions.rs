//! Condition types and reasons that Trellis writes into the `status.conditions` of the
//! resources it reads. They are part of the API: `kubectl wait --for=condition=Accepted`
//! and ArgoCD health checks depend on them.

/// Condition types.
pub mod types {
    /// The resource is valid and in force. `False` means the last good version stays in force.
    pub const ACCEPTED: &str = "Accepted";
    /// Every resource this one refers to (Services, route groups) exists.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
}

/// Condition reasons (CamelCase, as Kubernetes requires).
pub mod reasons {
    pub const ACCEPTED: &str = "Accepted";
    /// A field is invalid (bad regex, negative weight, ...).
    pub const INVALID: &str = "Invalid";
    /// Another resource claims the same thing (two un-matched splits on one root).
    pub const CONFLICTED: &str = "Conflicted";
    /// The object was written in a version that cannot be converted to the hub.
    pub const UNCONVERTIBLE: &str = "Unconvertible";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// A referenced Service, HTTPRouteGroup or TCPRoute does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const ROUTE_NOT_FOUND: &str = "RouteNotFound";
}
