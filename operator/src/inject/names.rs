//! Names that are part of the injection interface: labels, annotations, containers,
//! volumes, ports and paths (docs/injection.md lists them for users).

/// Label (namespace or pod) that opts in (`enabled`) or a pod out (`disabled`).
pub const INJECT_LABEL: &str = "trellis.dev/inject";
/// Value of [`INJECT_LABEL`] that opts in.
pub const ENABLED: &str = "enabled";
/// Value of [`INJECT_LABEL`] that opts a pod out.
pub const DISABLED: &str = "disabled";

/// Annotation put on injected pods; its value is the Trellis version that injected.
pub const INJECTED_ANNOTATION: &str = "trellis.dev/injected";
/// The Trellis version written into [`INJECTED_ANNOTATION`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Pod annotations users may set (comma-separated lists for the `skip-*` ones).
pub mod annotations {
    pub const SKIP_OUTBOUND_PORTS: &str = "trellis.dev/skip-outbound-ports";
    pub const SKIP_INBOUND_PORTS: &str = "trellis.dev/skip-inbound-ports";
    pub const SKIP_OUTBOUND_CIDRS: &str = "trellis.dev/skip-outbound-cidrs";
    pub const PROXY_CPU_REQUEST: &str = "trellis.dev/proxy-cpu-request";
    pub const PROXY_MEMORY_REQUEST: &str = "trellis.dev/proxy-memory-request";
    pub const PROXY_CPU_LIMIT: &str = "trellis.dev/proxy-cpu-limit";
    pub const PROXY_MEMORY_LIMIT: &str = "trellis.dev/proxy-memory-limit";
}

/// The proxy container (a native sidecar init container, or the first container).
pub const PROXY_CONTAINER: &str = "trellis-proxy";
/// The init container that writes the iptables rules.
pub const INIT_CONTAINER: &str = "trellis-init";
/// The binary in the proxy image (`trellis-proxy init` for the init container).
pub const PROXY_BINARY: &str = "trellis-proxy";

/// Projected ServiceAccount token volume the proxy proves its identity with.
pub const IDENTITY_VOLUME: &str = "trellis-identity";
/// Where [`IDENTITY_VOLUME`] is mounted in the proxy container.
pub const IDENTITY_DIR: &str = "/var/run/secrets/trellis.dev/identity";
/// The token file in [`IDENTITY_DIR`].
pub const IDENTITY_TOKEN_FILE: &str = "/var/run/secrets/trellis.dev/identity/token";
/// Audience of the projected token (the operator's Identity API accepts only this one).
pub const IDENTITY_AUDIENCE: &str = "trellis";
/// Lifetime of the projected token; the kubelet renews it at 80 %.
pub const IDENTITY_TOKEN_SECONDS: i64 = 3600;

/// emptyDir mounted at `/run` in the init container: iptables' lock file
/// (`/run/xtables.lock`) on a read-only root filesystem.
pub const XTABLES_VOLUME: &str = "trellis-xtables-lock";

/// Container port names of the proxy.
pub const INBOUND_PORT_NAME: &str = "trellis-inbound";
pub const ADMIN_PORT_NAME: &str = "trellis-admin";

/// Environment variables of the proxy container, from the downward API.
pub const ENV_POD_NAME: &str = "POD_NAME";
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const ENV_POD_SERVICE_ACCOUNT: &str = "POD_SERVICE_ACCOUNT";
