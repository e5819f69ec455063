//! From untyped objects to hub resources and back.
//!
//! [`parse`] takes any object (as JSON) and, when its group and kind are ones Trellis
//! serves, reads it at its own version and converts it to the hub. [`to_version`] writes
//! a hub resource at any served version (what a CRD conversion webhook answers).

use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ConversionError;
use crate::access::{self, TrafficTarget};
use crate::specs::{
    self, HTTPRouteGroup, TCPRoute, UDPRoute, http_route_group, tcp_route, udp_route,
};
use crate::split::{self, TrafficSplit};
use crate::trellis::{
    self, canary, canary::Canary, mesh_config, mesh_config::MeshConfig, traffic_policy,
    traffic_policy::TrafficPolicy,
};

/// A resource Trellis reads, at its hub version.
// Resources are held one per object read, not in bulk: the size difference between
// variants does not matter, and unboxed variants keep every `match` simple.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    TrafficSplit(TrafficSplit),
    TrafficTarget(TrafficTarget),
    HTTPRouteGroup(HTTPRouteGroup),
    TCPRoute(TCPRoute),
    UDPRoute(UDPRoute),
    MeshConfig(MeshConfig),
    TrafficPolicy(TrafficPolicy),
    Canary(Canary),
}

/// Why an object of a served kind could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("apiVersion: {api_version} does not serve {kind}; served versions: {served}")]
    UnservedVersion {
        kind: String,
        api_version: String,
        served: String,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Conversion(#[from] ConversionError),
}

impl ParseError {
    /// The field path the error is about (`spec.backends[0].weight`).
    pub fn field(&self) -> &str {
        match self {
            ParseError::UnservedVersion { .. } => "apiVersion",
            ParseError::Invalid { field, .. } => field,
            ParseError::Conversion(e) => &e.field,
        }
    }

    /// What is wrong, without the field.
    pub fn message(&self) -> String {
        match self {
            ParseError::UnservedVersion {
                api_version,
                served,
                kind,
            } => format!("{api_version} does not serve {kind}; served versions: {served}"),
            ParseError::Invalid { message, .. } => message.clone(),
            ParseError::Conversion(e) => e.message.clone(),
        }
    }
}

/// `(group, kind, versions newest first)` of every kind Trellis serves.
pub const SERVED: [(&str, &str, &[&str]); 8] = [
    (split::GROUP, split::KIND, &split::VERSIONS),
    (access::GROUP, access::KIND, &access::VERSIONS),
    (
        specs::GROUP,
        http_route_group::KIND,
        &http_route_group::VERSIONS,
    ),
    (specs::GROUP, tcp_route::KIND, &tcp_route::VERSIONS),
    (specs::GROUP, udp_route::KIND, &udp_route::VERSIONS),
    (trellis::GROUP, mesh_config::KIND, &[trellis::VERSION]),
    (trellis::GROUP, traffic_policy::KIND, &[trellis::VERSION]),
    (trellis::GROUP, canary::KIND, &[trellis::VERSION]),
];

/// Whether `apiVersion`/`kind` name a kind Trellis serves (in any version).
pub fn is_served_kind(api_version: &str, kind: &str) -> bool {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    SERVED.iter().any(|(g, k, _)| *g == group && *k == kind)
}

/// Reads an object of a served kind and converts it to the hub version.
/// Returns `Ok(None)` for objects of other kinds.
pub fn parse(mut value: Value) -> Result<Option<Resource>, ParseError> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    let Some((group, version)) = api_version.split_once('/') else {
        return Ok(None);
    };
    let Some((_, _, versions)) = SERVED.iter().find(|(g, k, _)| *g == group && *k == kind) else {
        return Ok(None);
    };
    if !versions.contains(&version) {
        return Err(ParseError::UnservedVersion {
            kind,
            api_version: api_version.clone(),
            served: versions
                .iter()
                .map(|v| format!("{group}/{v}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    check_top_level(&value)?;
    // TCPRoute v1alpha3 has no fields, so `spec` may be left out; everywhere else it is
    // required (the upstream schemas do not require it, Trellis reports it as an error).
    if value.get("spec").is_none() && (kind == tcp_route::KIND && version == "v1alpha3") {
        value["spec"] = Value::Object(Default::default());
    }
    if value.get("spec").is_none() {
        return Err(ParseError::Invalid {
            field: "spec".into(),
            message: "required".into(),
        });
    }
    let resource = match (kind.as_str(), version) {
        ("TrafficSplit", "v1alpha4") => Resource::TrafficSplit(read(value)?),
        ("TrafficSplit", "v1alpha3") => {
            Resource::TrafficSplit(read::<split::v1alpha3::TrafficSplit>(value)?.into())
        }
        ("TrafficSplit", "v1alpha2") => {
            Resource::TrafficSplit(read::<split::v1alpha2::TrafficSplit>(value)?.into())
        }
        ("TrafficSplit", _) => {
            Resource::TrafficSplit(read::<split::v1alpha1::TrafficSplit>(value)?.try_into()?)
        }
        ("TrafficTarget", "v1alpha3") => Resource::TrafficTarget(read(value)?),
        ("TrafficTarget", _) => {
            Resource::TrafficTarget(read::<access::v1alpha2::TrafficTarget>(value)?.try_into()?)
        }
        ("HTTPRouteGroup", "v1alpha4") => Resource::HTTPRouteGroup(read(value)?),
        ("HTTPRouteGroup", _) => Resource::HTTPRouteGroup(
            read::<http_route_group::v1alpha3::HTTPRouteGroup>(value)?.into(),
        ),
        ("TCPRoute", "v1alpha4") => Resource::TCPRoute(read(value)?),
        ("TCPRoute", _) => Resource::TCPRoute(read::<tcp_route::v1alpha3::TCPRoute>(value)?.into()),
        ("UDPRoute", _) => Resource::UDPRoute(read::<udp_route::v1alpha4::UDPRoute>(value)?),
        ("TrafficPolicy", _) => Resource::TrafficPolicy(read(value)?),
        ("Canary", _) => Resource::Canary(read(value)?),
        _ => Resource::MeshConfig(read(value)?),
    };
    Ok(Some(resource))
}

/// Writes a hub resource at `version` of its group (CRD conversion, `kubectl get` of an
/// older version). Fails when the version cannot hold one of the resource's fields.
pub fn to_version(resource: &Resource, version: &str) -> Result<Value, ParseError> {
    let unserved = |kind: &str, group: &str, versions: &[&str]| ParseError::UnservedVersion {
        kind: kind.to_owned(),
        api_version: format!("{group}/{version}"),
        served: versions
            .iter()
            .map(|v| format!("{group}/{v}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let json = |v: Result<Value, serde_json::Error>| v.expect("Trellis types serialize to JSON");
    Ok(match (resource, version) {
        (Resource::TrafficSplit(ts), "v1alpha4") => json(serde_json::to_value(ts)),
        (Resource::TrafficSplit(ts), "v1alpha3") => json(serde_json::to_value(
            split::v1alpha3::TrafficSplit::from(ts.clone()),
        )),
        (Resource::TrafficSplit(ts), "v1alpha2") => json(serde_json::to_value(
            split::v1alpha2::TrafficSplit::try_from(ts.clone())?,
        )),
        (Resource::TrafficSplit(ts), "v1alpha1") => json(serde_json::to_value(
            split::v1alpha1::TrafficSplit::try_from(ts.clone())?,
        )),
        (Resource::TrafficSplit(_), _) => {
            return Err(unserved(split::KIND, split::GROUP, &split::VERSIONS));
        }
        (Resource::TrafficTarget(tt), "v1alpha3") => json(serde_json::to_value(tt)),
        (Resource::TrafficTarget(tt), "v1alpha2") => json(serde_json::to_value(
            access::v1alpha2::TrafficTarget::try_from(tt.clone())?,
        )),
        (Resource::TrafficTarget(_), _) => {
            return Err(unserved(access::KIND, access::GROUP, &access::VERSIONS));
        }
        (Resource::HTTPRouteGroup(g), "v1alpha4") => json(serde_json::to_value(g)),
        (Resource::HTTPRouteGroup(g), "v1alpha3") => json(serde_json::to_value(
            http_route_group::v1alpha3::HTTPRouteGroup::from(g.clone()),
        )),
        (Resource::HTTPRouteGroup(_), _) => {
            return Err(unserved(
                http_route_group::KIND,
                specs::GROUP,
                &http_route_group::VERSIONS,
            ));
        }
        (Resource::TCPRoute(r), "v1alpha4") => json(serde_json::to_value(r)),
        (Resource::TCPRoute(r), "v1alpha3") => json(serde_json::to_value(
            tcp_route::v1alpha3::TCPRoute::try_from(r.clone())?,
        )),
        (Resource::TCPRoute(_), _) => {
            return Err(unserved(
                tcp_route::KIND,
                specs::GROUP,
                &tcp_route::VERSIONS,
            ));
        }
        (Resource::UDPRoute(r), "v1alpha4") => json(serde_json::to_value(r)),
        (Resource::UDPRoute(_), _) => {
            return Err(unserved(
                udp_route::KIND,
                specs::GROUP,
                &udp_route::VERSIONS,
            ));
        }
        (Resource::MeshConfig(m), "v1alpha1") => json(serde_json::to_value(m)),
        (Resource::MeshConfig(_), _) => {
            return Err(unserved(
                mesh_config::KIND,
                trellis::GROUP,
                &[trellis::VERSION],
            ));
        }
        (Resource::TrafficPolicy(p), "v1alpha1") => json(serde_json::to_value(p)),
        (Resource::TrafficPolicy(_), _) => {
            return Err(unserved(
                traffic_policy::KIND,
                trellis::GROUP,
                &[trellis::VERSION],
            ));
        }
        (Resource::Canary(c), "v1alpha1") => json(serde_json::to_value(c)),
        (Resource::Canary(_), _) => {
            return Err(unserved(canary::KIND, trellis::GROUP, &[trellis::VERSION]));
        }
    })
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::TrafficSplit(_) => split::KIND,
            Resource::TrafficTarget(_) => access::KIND,
            Resource::HTTPRouteGroup(_) => http_route_group::KIND,
            Resource::TCPRoute(_) => tcp_route::KIND,
            Resource::UDPRoute(_) => udp_route::KIND,
            Resource::MeshConfig(_) => mesh_config::KIND,
            Resource::TrafficPolicy(_) => traffic_policy::KIND,
            Resource::Canary(_) => canary::KIND,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::TrafficSplit(r) => &r.metadata,
            Resource::TrafficTarget(r) => &r.metadata,
            Resource::HTTPRouteGroup(r) => &r.metadata,
            Resource::TCPRoute(r) => &r.metadata,
            Resource::UDPRoute(r) => &r.metadata,
            Resource::MeshConfig(r) => &r.metadata,
            Resource::TrafficPolicy(r) => &r.metadata,
            Resource::Canary(r) => &r.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::TrafficSplit(r) => &mut r.metadata,
            Resource::TrafficTarget(r) => &mut r.metadata,
            Resource::HTTPRouteGroup(r) => &mut r.metadata,
            Resource::TCPRoute(r) => &mut r.metadata,
            Resource::UDPRoute(r) => &mut r.metadata,
            Resource::MeshConfig(r) => &mut r.metadata,
            Resource::TrafficPolicy(r) => &mut r.metadata,
            Resource::Canary(r) => &mut r.metadata,
        }
    }

    /// Whether the kind lives in a namespace (everything but MeshConfig).
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Resource::MeshConfig(_))
    }
}

const TOP_LEVEL: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

fn check_top_level(value: &Value) -> Result<(), ParseError> {
    let Some(object) = value.as_object() else {
        return Ok(());
    };
    match object.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        Some(unknown) => Err(ParseError::Invalid {
            field: unknown.clone(),
            message: format!("unknown field; expected one of {}", TOP_LEVEL.join(", ")),
        }),
        None => Ok(()),
    }
}

/// Deserializes with the path of the failing field, phrased for people: a missing or
/// unknown field is reported at its own path.
fn read<T: DeserializeOwned>(value: Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let at = |name: &str| {
            if path.ends_with(&format!(".{name}")) || path == name {
                path.clone()
            } else if path == "." || path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);
        let (field, message) =
            if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
                (at(&name), "required".to_owned())
            } else if let Some(name) = message.strip_prefix("unknown field ").and_then(quoted) {
                let expected = message.split_once(", expected ").map_or("", |(_, e)| e);
                (at(&name), format!("unknown field; expected {expected}"))
            } else {
                (if path == "." { String::new() } else { path }, message)
            };
        ParseError::Invalid { field, message }
    })
}
