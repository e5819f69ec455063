//! `inject.yaml`: the injection config (the ConfigMap `trellis-inject` in a cluster, the
//! `--config` file of `trellis inject`). Every field has a default, so an empty file is a
//! valid config. A mistake is reported with the file, the line and the field.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::{Map, Value};

use super::skip::{Cidr, PortRange};
use crate::manifest::yaml;

/// The injection config (camelCase in YAML).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Proxy image; the init container runs the same image (`trellis-proxy init`).
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; unset: Kubernetes' default for the tag.
    pub image_pull_policy: Option<PullPolicy>,
    /// The operator's gRPC address (Discovery and Identity APIs), as the proxy dials it.
    pub control_plane: String,
    /// Trust domain of the SPIFFE ids (`spiffe://<trustDomain>/ns/<ns>/sa/<sa>`).
    pub trust_domain: String,
    /// Where the proxy runs: a native sidecar or an ordinary container.
    pub sidecar_mode: SidecarMode,
    /// Resources of the proxy container; pod annotations override each value.
    pub resources: Resources,
    /// The uid the proxy runs as; `trellis-proxy init` exempts its connections.
    pub proxy_uid: u32,
    /// Destination ports the app reaches directly (added to the pod annotation's).
    pub skip_outbound_ports: Vec<PortRange>,
    /// App ports clients reach directly (added to the pod annotation's).
    pub skip_inbound_ports: Vec<PortRange>,
    /// Destination networks the app reaches directly (added to the pod annotation's).
    pub skip_outbound_cidrs: Vec<Cidr>,
}

/// Default proxy image: the release's own.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/trellis-mesh/proxy:", env!("CARGO_PKG_VERSION"));
/// Default control plane: the operator Service in the default release namespace.
pub const DEFAULT_CONTROL_PLANE: &str = "http://trellis-operator.trellis-system.svc:8090";

impl Default for Config {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.into(),
            image_pull_policy: None,
            control_plane: DEFAULT_CONTROL_PLANE.into(),
            trust_domain: "cluster.local".into(),
            sidecar_mode: SidecarMode::Auto,
            resources: Resources::default(),
            proxy_uid: 2102,
            skip_outbound_ports: Vec::new(),
            skip_inbound_ports: Vec::new(),
            skip_outbound_cidrs: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// How the proxy is added to a pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SidecarMode {
    /// Native where the cluster has native sidecars (Kubernetes >= 1.29).
    #[default]
    Auto,
    /// An init container with `restartPolicy: Always` (Kubernetes >= 1.29).
    Native,
    /// The first container of the pod (every Kubernetes version).
    InitContainer,
}

impl SidecarMode {
    /// Whether to inject a native sidecar, given whether the cluster has them.
    pub fn native(self, cluster_has_native_sidecars: bool) -> bool {
        match self {
            SidecarMode::Auto => cluster_has_native_sidecars,
            SidecarMode::Native => true,
            SidecarMode::InitContainer => false,
        }
    }
}

/// Requests and limits of the proxy container.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    pub requests: Requests,
    pub limits: Limits,
}

/// Default requests: a proxy beside one app at a few hundred requests per second.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Requests {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

impl Default for Requests {
    fn default() -> Self {
        Self {
            cpu: Some(Quantity("10m".into())),
            memory: Some(Quantity("32Mi".into())),
        }
    }
}

/// No limits by default (`null` in the file removes a default too).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

/// A Kubernetes quantity (`100m`, `64Mi`), checked when read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quantity(pub String);

impl std::str::FromStr for Quantity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let q = smi_crds::quantity::Quantity::new(text.trim());
        match q.value() {
            Ok(v) if v.mantissa >= 0 => Ok(Quantity(text.trim().to_owned())),
            Ok(_) => Err(format!("{text:?} is negative")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// `"100m"`, `"64Mi"`, or a number (`1`, `0.5`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(de::Error::custom(format!(
                    "{other} is not a quantity; write e.g. \"100m\" or \"64Mi\""
                )));
            }
        };
        text.parse().map_err(de::Error::custom)
    }
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: invalid YAML: {message}")]
    Yaml {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: {field}: {message}")]
    Field {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
}

impl Config {
    /// Reads an `inject.yaml` file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::parse(&text, &file)
    }

    /// Reads the text of an `inject.yaml`; `origin` names it in errors (a file, or
    /// `ConfigMap trellis-system/trellis-inject`).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let stream = yaml::parse_stream(text);
        if let Some(e) = stream.error {
            return Err(ConfigError::Yaml {
                file: origin.into(),
                line: e.line,
                message: e.message,
            });
        }
        let mut documents = stream.documents.into_iter();
        let Some(doc) = documents.next() else {
            return Ok(Config::default());
        };
        if let Some(extra) = documents.next() {
            return Err(ConfigError::Yaml {
                file: origin.into(),
                line: extra.line,
                message: "inject.yaml holds one document; this is a second one".into(),
            });
        }
        let fail = |field: String, message: String| ConfigError::Field {
            file: origin.into(),
            line: doc.line_of(&field),
            field: if field.is_empty() {
                "(document)".into()
            } else {
                field
            },
            message,
        };
        if !doc.value.is_object() {
            return Err(fail(
                String::new(),
                "must be a mapping of inject.yaml's fields (image: ..., controlPlane: ...)".into(),
            ));
        }
        let config: Config = serde_json::from_value(doc.value.clone()).map_err(|_| {
            let (field, message) = locate::<Config>(&doc.value);
            fail(field, message)
        })?;
        config
            .check()
            .map_err(|(field, message)| fail(field.into(), message))?;
        Ok(config)
    }

    /// What the types cannot say.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let url = self.control_plane.as_str();
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with(':')) {
            return Err((
                "controlPlane",
                format!("{url:?} is not an http(s) URL; write e.g. {DEFAULT_CONTROL_PLANE}"),
            ));
        }
        if self.image.trim().is_empty() {
            return Err(("image", "must name the proxy image".into()));
        }
        let td = &self.trust_domain;
        if td.is_empty() || td.contains(['/', ':', ' ']) {
            return Err((
                "trustDomain",
                format!("{td:?} is not a trust domain; write e.g. cluster.local"),
            ));
        }
        if self.proxy_uid == 0 {
            return Err((
                "proxyUid",
                "must not be 0: the proxy runs as a non-root user whose connections iptables exempts".into(),
            ));
        }
        Ok(())
    }
}

/// The field of `value` that `T` refuses (`resources.limits.cpu`, `skipInboundPorts[1]`)
/// and why: keeps one field at a time, from the top down, and goes deeper while the field
/// alone is still refused. Every field of `T` has a default, so all else is accepted.
fn locate<T: DeserializeOwned>(value: &Value) -> (String, String) {
    let refused = |v: Value| serde_json::from_value::<T>(v).err().map(|e| e.to_string());
    let mut message = refused(value.clone()).unwrap_or_default();
    let mut path: Vec<Step> = Vec::new();
    loop {
        let node = path.iter().fold(value, |v, step| step.get(v));
        let children: Vec<Step> = match node {
            Value::Object(map) => map.keys().cloned().map(Step::Key).collect(),
            Value::Array(items) => (0..items.len()).map(Step::Index).collect(),
            _ => break,
        };
        let deeper = children.into_iter().find_map(|child| {
            let mut candidate = path.clone();
            candidate.push(child);
            refused(keep_only(value, &candidate)).map(|m| (candidate, m))
        });
        match deeper {
            Some((p, m)) => (path, message) = (p, m),
            None => break,
        }
        // The field itself is unknown: what it holds does not matter.
        if let Some(Step::Key(last)) = path.last()
            && message.starts_with(&format!("unknown field `{last}`"))
        {
            break;
        }
    }
    (render(&path), message)
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    fn get<'v>(&self, v: &'v Value) -> &'v Value {
        match self {
            Step::Key(k) => &v[k.as_str()],
            Step::Index(i) => &v[*i],
        }
    }
}

/// `value` with only the branch along `path` kept (arrays keep the one item).
fn keep_only(value: &Value, path: &[Step]) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return value.clone();
    };
    let inner = keep_only(first.get(value), rest);
    match first {
        Step::Key(k) => Value::Object(Map::from_iter([(k.clone(), inner)])),
        Step::Index(_) => Value::Array(vec![inner]),
    }
}

/// `resources.limits.cpu`, `skipInboundPorts[1]` (the paths of [`yaml::Document::line_of`]).
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "inject.yaml").map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_is_the_default_config() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.image, "ghcr.io/trellis-mesh/proxy:0.1.0");
        assert_eq!(
            config.control_plane,
            "http://trellis-operator.trellis-system.svc:8090"
        );
        assert_eq!(config.trust_domain, "cluster.local");
        assert_eq!(config.proxy_uid, 2102);
        assert_eq!(config.sidecar_mode, SidecarMode::Auto);
        assert_eq!(config.resources.requests.cpu, Some(Quantity("10m".into())));
        assert_eq!(config.resources.limits.memory, None);
    }

    #[test]
    fn every_field_is_read_in_camel_case() {
        let config = parse(
            "image: registry.local/proxy:dev
imagePullPolicy: Always
controlPlane: http://trellis-operator.mesh.svc:8090
trustDomain: example.org
sidecarMode: init-container
resources:
  requests: {memory: 64Mi}
  limits: {cpu: 1, memory: 256Mi}
proxyUid: 3000
skipOutboundPorts: [25, \"8000-8100\"]
skipInboundPorts: [22]
skipOutboundCidrs: [169.254.169.254/32]
",
        )
        .unwrap();
        assert_eq!(config.image_pull_policy, Some(PullPolicy::Always));
        assert_eq!(
            config.control_plane,
            "http://trellis-operator.mesh.svc:8090"
        );
        assert_eq!(config.trust_domain, "example.org");
        assert_eq!(config.sidecar_mode, SidecarMode::InitContainer);
        // A section keeps the defaults of the fields it does not name.
        assert_eq!(config.resources.requests.cpu, Some(Quantity("10m".into())));
        assert_eq!(
            config.resources.requests.memory,
            Some(Quantity("64Mi".into()))
        );
        assert_eq!(config.resources.limits.cpu, Some(Quantity("1".into())));
        assert_eq!(config.proxy_uid, 3000);
        assert_eq!(
            super::super::skip::join(&config.skip_outbound_ports),
            "25,8000-8100"
        );
        assert_eq!(config.skip_outbound_cidrs.len(), 1);
    }

    #[test]
    fn null_removes_a_default_request() {
        let config = parse("resources:\n  requests:\n    cpu: null\n").unwrap();
        assert_eq!(config.resources.requests.cpu, None);
        assert_eq!(
            config.resources.requests.memory,
            Some(Quantity("32Mi".into()))
        );
    }

    #[test]
    fn sidecar_mode_auto_follows_the_cluster() {
        assert!(SidecarMode::Auto.native(true));
        assert!(!SidecarMode::Auto.native(false));
        assert!(SidecarMode::Native.native(false));
        assert!(!SidecarMode::InitContainer.native(true));
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let refused = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            refused("image: x\nresources:\n  limits:\n    cpu: lots\n"),
            r#"inject.yaml:4: resources.limits.cpu: "lots" is not a quantity: expected a number with an optional suffix (m, k, M, G, Ki, Mi, e3, ...), e.g. "500m" or "1""#
        );
        assert_eq!(
            refused("skipInboundPorts: [22, ssh]\n"),
            r#"inject.yaml:1: skipInboundPorts[1]: "ssh" is not a port (1-65535); write e.g. 25 or 8000-8100"#
        );
        assert_eq!(
            refused("imag: x\n"),
            "inject.yaml:1: imag: unknown field `imag`, expected one of `image`, `imagePullPolicy`, `controlPlane`, `trustDomain`, `sidecarMode`, `resources`, `proxyUid`, `skipOutboundPorts`, `skipInboundPorts`, `skipOutboundCidrs`"
        );
        assert_eq!(
            refused("image: x\nsidecarMode: sidecar\n"),
            "inject.yaml:2: sidecarMode: unknown variant `sidecar`, expected one of `auto`, `native`, `init-container`"
        );
        assert_eq!(
            refused("resources:\n  requests:\n    gpu: 1\n"),
            "inject.yaml:3: resources.requests.gpu: unknown field `gpu`, expected `cpu` or `memory`"
        );
        assert_eq!(
            refused("controlPlane: trellis-operator:8090\n"),
            r#"inject.yaml:1: controlPlane: "trellis-operator:8090" is not an http(s) URL; write e.g. http://trellis-operator.trellis-system.svc:8090"#
        );
        assert!(refused("proxyUid: 0\n").starts_with("inject.yaml:1: proxyUid: must not be 0"));
        assert!(refused("proxyUid: -1\n").starts_with("inject.yaml:1: proxyUid: invalid value"));
        assert_eq!(
            refused("[]\n"),
            "inject.yaml:1: (document): must be a mapping of inject.yaml's fields (image: ..., controlPlane: ...)"
        );
        assert!(
            refused("image: [\n").starts_with("inject.yaml:"),
            "syntax errors too"
        );
    }
}
