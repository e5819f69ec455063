//! Building proxy configs in tests: one model (JSON values in the protobuf JSON mapping with
//! proto field names, as docs/proxy.md writes the file) rendered either as the YAML file
//! (`--config`) or as the `OutboundConfig` message a control plane sends.
//!
//! ```text
//! let dest = Destination::new("web.test")
//!     .route(route("split", &[("a", 80), ("b", 20)]))
//!     .backend(backend("a", &[a.addr()]))
//!     .backend(backend("b", &[b.addr()]));
//! let proxy = Proxy::start(&yaml(&[dest])).await?;
//! ```

use std::net::SocketAddr;

use serde_json::{Value, json};
use trellis_proxy_api::v1::OutboundConfig;

/// One destination (`OutboundConfig`), as a JSON value in the file's mapping.
#[derive(Clone, Debug)]
pub struct Destination(Value);

impl Destination {
    /// A destination for `authority`, version `"1"`, no routes or backends yet.
    pub fn new(authority: &str) -> Destination {
        Destination(json!({
            "authority": authority,
            "version": "1",
            "routes": [],
            "backends": [],
        }))
    }

    /// Sets the version (shown on `/config`, echoed in acks).
    pub fn version(self, version: &str) -> Destination {
        self.set("version", json!(version))
    }

    /// Appends a route (see [`route`]).
    pub fn route(mut self, route: Value) -> Destination {
        self.push("routes", route);
        self
    }

    /// Appends a backend (see [`backend`]).
    pub fn backend(mut self, backend: Value) -> Destination {
        self.push("backends", backend);
        self
    }

    /// Sets any other field (`rate_limit`, `protocol`).
    pub fn set(mut self, key: &str, value: Value) -> Destination {
        self.0[key] = value;
        self
    }

    fn push(&mut self, key: &str, value: Value) {
        self.0[key]
            .as_array_mut()
            .expect("routes and backends are lists")
            .push(value);
    }

    /// The JSON value.
    pub fn json(&self) -> &Value {
        &self.0
    }

    /// The `OutboundConfig` message (what a control plane sends).
    ///
    /// # Panics
    /// When the value does not follow the protobuf JSON mapping.
    pub fn proto(&self) -> OutboundConfig {
        serde_json::from_value(self.0.clone())
            .unwrap_or_else(|e| panic!("not an OutboundConfig: {e}\n{}", self.0))
    }
}

/// The config file for these destinations, as YAML.
pub fn yaml(destinations: &[Destination]) -> String {
    let file = json!({
        "outbound": destinations.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
    });
    serde_saphyr::to_string(&file).expect("a JSON value renders as YAML")
}

/// An endpoint at `addr`.
pub fn endpoint(addr: SocketAddr) -> Value {
    json!({"address": {"ip": addr.ip().to_string(), "port": addr.port()}})
}

/// A backend named `name` with these endpoints (default balancer).
pub fn backend(name: &str, addrs: &[SocketAddr]) -> Value {
    json!({
        "name": name,
        "endpoints": addrs.iter().copied().map(endpoint).collect::<Vec<_>>(),
    })
}

/// A route named `name` sending to `(backend, weight)`s, matching every request.
pub fn route(name: &str, backends: &[(&str, u32)]) -> Value {
    json!({
        "name": name,
        "backends": backends
            .iter()
            .map(|(b, w)| json!({"backend": b, "weight": w}))
            .collect::<Vec<_>>(),
    })
}

/// `value` (an object) with `key` set to `field`: `with(route(..), "retry", json!({..}))`.
pub fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

/// A destination with one route `default` to one backend `name` with these endpoints.
pub fn single(authority: &str, name: &str, addrs: &[SocketAddr]) -> Destination {
    Destination::new(authority)
        .route(route("default", &[(name, 1)]))
        .backend(backend(name, addrs))
}

/// The versions named in a config file (YAML or JSON), in order; empty when it does not
/// parse.
pub fn versions_in(file: &str) -> Vec<String> {
    let Ok(value) = serde_saphyr::from_str::<Value>(file) else {
        return Vec::new();
    };
    value["outbound"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter_map(|d| d["version"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a JSON document (the `/config` dump) holds `"version": version` anywhere.
pub fn mentions_version(doc: &Value, version: &str) -> bool {
    match doc {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "version" && v.as_str() == Some(version)) || mentions_version(v, version)
        }),
        Value::Array(items) => items.iter().any(|v| mentions_version(v, version)),
        _ => false,
    }
}
