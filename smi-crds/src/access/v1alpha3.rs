//! TrafficTarget `access.smi-spec.io/v1alpha3`: the hub (storage) version.

use super::{Rule, Subject};

traffic_target_version!("v1alpha3", {
    /// The destination ServiceAccount whose workloads receive the traffic. Its namespace,
    /// when given, must be the TrafficTarget's namespace.
    pub destination: Subject,
    /// The routes allowed. A request is allowed when it matches the HTTPRouteGroup rules
    /// (if any) AND its port is in the TCPRoute/UDPRoute rules (if any).
    pub rules: Vec<Rule>,
    /// The source ServiceAccounts allowed to call the destination.
    pub sources: Vec<Subject>,
});
