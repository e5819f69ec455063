//! Building the proxy's inbound policy in tests: one `InboundConfig` as a JSON value in the
//! protobuf JSON mapping (proto field names), as the config file's `inbound:` section
//! holds it (docs/proxy.md, "Inbound authorization").
//!
//! ```text
//! let policy = InboundPolicy::deny()
//!     .port(unmeshed(app.addr().port()).authorization(authorization("api", &[], &["/api"])));
//! let proxy = Proxy::builder().config(&yaml(&[], &policy)).inbound_target(app.addr()).start().await?;
//! ```

use serde_json::{Value, json};

use crate::config::Destination;

/// An inbound policy (`InboundConfig`).
#[derive(Clone, Debug)]
pub struct InboundPolicy(Value);

impl InboundPolicy {
    /// Default policy deny (SMI's default), version `"1"`, no ports.
    pub fn deny() -> InboundPolicy {
        InboundPolicy::with_default("DEFAULT_POLICY_DENY")
    }

    /// Default policy allow (permissive).
    pub fn allow() -> InboundPolicy {
        InboundPolicy::with_default("DEFAULT_POLICY_ALLOW")
    }

    fn with_default(default_policy: &str) -> InboundPolicy {
        InboundPolicy(json!({
            "version": "1",
            "default_policy": default_policy,
            "ports": [],
        }))
    }

    /// Sets the version (shown on `/config`).
    pub fn version(mut self, version: &str) -> InboundPolicy {
        self.0["version"] = json!(version);
        self
    }

    /// Appends a port (see [`Port`]).
    pub fn port(mut self, port: Port) -> InboundPolicy {
        self.0["ports"]
            .as_array_mut()
            .expect("ports is a list")
            .push(port.0);
        self
    }

    /// The JSON value.
    pub fn json(&self) -> &Value {
        &self.0
    }
}

/// One `InboundPort`.
#[derive(Clone, Debug)]
pub struct Port(Value);

impl Port {
    /// Appends an authorization (see [`authorization`]).
    pub fn authorization(mut self, authorization: Value) -> Port {
        self.0["authorizations"]
            .as_array_mut()
            .expect("authorizations is a list")
            .push(authorization);
        self
    }
}

/// A port for meshed (mTLS) clients only, without authorizations yet.
pub fn meshed(port: u16) -> Port {
    Port(json!({"port": port, "authorizations": []}))
}

/// A port that also lets plaintext clients in, without authorizations yet.
pub fn unmeshed(port: u16) -> Port {
    Port(json!({"port": port, "allow_unmeshed": true, "authorizations": []}))
}

/// An authorization named `name` for these SPIFFE ids (or `*`) and path regexes (none:
/// every request).
pub fn authorization(name: &str, identities: &[&str], paths: &[&str]) -> Value {
    json!({
        "name": name,
        "identities": identities,
        "routes": paths.iter().map(|p| json!({"path_regex": p})).collect::<Vec<_>>(),
    })
}

/// The config file with these destinations and this inbound policy, as YAML.
pub fn yaml(destinations: &[Destination], inbound: &InboundPolicy) -> String {
    let file = json!({
        "outbound": destinations.iter().map(|d| d.json().clone()).collect::<Vec<_>>(),
        "inbound": inbound.0,
    });
    serde_saphyr::to_string(&file).expect("a JSON value renders as YAML")
}
