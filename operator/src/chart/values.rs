//! The chart's values as Rust types. `charts/trellis/values.yaml` deserializes into
//! [`Values`] and equals [`Values::default()`] (a test checks it); the doc comments become
//! the descriptions in `values.schema.json`, which Helm checks every install against.
//!
//! Objects that list their keys reject unknown ones (`additionalProperties: false`), so
//! a typo such as `webhook.failurePolcy` fails `helm install` instead of being ignored.
//! Maps of Kubernetes' own (labels, `nodeSelector`, `affinity`) stay open.

use std::collections::BTreeMap;

use k8s_openapi::schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smi_crds::trellis::mesh_config::MeshConfigSpec;

/// Values of the Trellis Helm chart (`charts/trellis`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Values {
    /// Values Helm passes to every chart of a release (`global`); unused by this chart,
    /// accepted so that Trellis can be a subchart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<serde_json::Map<String, serde_json::Value>>,
    /// The operator's image: `<registry>/operator:<tag>`.
    pub image: Image,
    /// Secrets (in the release namespace) holding credentials for the image registry.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Operator replicas. Every replica serves gRPC and the webhooks; one, elected by the
    /// Lease `trellis-operator`, writes status and Events. With more than one, the pods
    /// prefer different nodes (unless `affinity` is set).
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// The operator container's resources.
    pub resources: Resources,
    /// Node labels the operator pods must run on.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the operator pods tolerate.
    pub tolerations: Vec<Toleration>,
    /// The operator pods' affinity (a Kubernetes `Affinity`). Empty: with `replicas` > 1,
    /// a preferred anti-affinity spreads the pods over nodes.
    pub affinity: serde_json::Map<String, serde_json::Value>,
    /// Annotations added to the operator pods.
    pub pod_annotations: BTreeMap<String, String>,
    /// Labels added to the operator pods.
    pub pod_labels: BTreeMap<String, String>,
    /// PriorityClass of the operator pods (empty: none). A mesh control plane is worth
    /// `system-cluster-critical` on clusters that allow it outside kube-system.
    pub priority_class_name: String,
    /// The operator's ServiceAccount (`trellis-operator`).
    pub service_account: ServiceAccount,
    /// The admission webhooks the operator serves (validation and sidecar injection).
    pub webhook: Webhook,
    /// What injected pods get: the ConfigMap `trellis-inject` the injection webhook reads.
    pub proxy: Proxy,
    /// The default MeshConfig (`trellis.dev/v1alpha1`, cluster-scoped, named `default`).
    pub mesh_config: MeshConfig,
    /// A Prometheus Operator ServiceMonitor for the operator's `/metrics` (admin port 9990).
    pub service_monitor: ServiceMonitor,
    /// A Prometheus Operator PodMonitor for the proxies' `/metrics` (port 4191).
    pub pod_monitor: PodMonitor,
    /// A PodDisruptionBudget for the operator pods.
    pub pod_disruption_budget: PodDisruptionBudget,
}

impl Default for Values {
    fn default() -> Self {
        Self {
            global: None,
            image: Image::default(),
            image_pull_secrets: Vec::new(),
            replicas: 1,
            resources: Resources::default(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: serde_json::Map::new(),
            pod_annotations: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            priority_class_name: String::new(),
            service_account: ServiceAccount::default(),
            webhook: Webhook::default(),
            proxy: Proxy::default(),
            mesh_config: MeshConfig::default(),
            service_monitor: ServiceMonitor::default(),
            pod_monitor: PodMonitor::default(),
            pod_disruption_budget: PodDisruptionBudget::default(),
        }
    }
}

/// A container image in a registry; the repository name (`operator`, `proxy`) is fixed.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Image {
    /// Registry and path holding the `operator` and `proxy` images.
    #[schemars(length(min = 1))]
    pub registry: String,
    /// Image tag; empty: the chart's appVersion.
    pub tag: String,
    /// When the kubelet pulls the image.
    pub pull_policy: PullPolicy,
}

impl Default for Image {
    fn default() -> Self {
        Self {
            registry: "ghcr.io/trellis-mesh".to_owned(),
            tag: String::new(),
            pull_policy: PullPolicy::IfNotPresent,
        }
    }
}

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// The name of an object in the release namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A Kubernetes resource quantity: `100m`, `128Mi`, `1.5` or `2`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(untagged)]
pub enum Quantity {
    Number(f64),
    Text(String),
}

impl From<&str> for Quantity {
    fn from(text: &str) -> Self {
        Quantity::Text(text.to_owned())
    }
}

fn quantities<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, Quantity> {
    pairs
        .into_iter()
        .map(|(name, quantity)| (name.to_owned(), quantity.into()))
        .collect()
}

/// A container's resource requests and limits (`cpu`, `memory`, `ephemeral-storage`, ...).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    /// What the scheduler reserves.
    pub requests: BTreeMap<String, Quantity>,
    /// The most the container may use (above the memory limit it is killed).
    pub limits: BTreeMap<String, Quantity>,
}

/// The operator's: it holds the index of every mesh resource in memory.
impl Default for Resources {
    fn default() -> Self {
        Self {
            requests: quantities([("cpu", "100m"), ("memory", "128Mi")]),
            limits: quantities([("memory", "512Mi")]),
        }
    }
}

/// A pod toleration of a node taint.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key (empty with `Exists`: every taint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// The taint value, with `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect tolerated (empty: every effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// With `NoExecute`: how long the pod stays once the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
pub enum TolerationOperator {
    Equal,
    Exists,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// The ServiceAccount the operator runs as (its name, `trellis-operator`, is fixed).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServiceAccount {
    /// Annotations on the ServiceAccount (e.g. a cloud provider's workload identity).
    pub annotations: BTreeMap<String, String>,
}

/// What the API server does when a webhook cannot be reached or fails: `Fail` rejects
/// the request, `Ignore` lets it through unchecked (for injection: without a proxy).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

/// The validating webhook `validate.trellis.dev` (ValidatingWebhookConfiguration
/// `trellis-validation`) and the injection webhook.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Webhook {
    /// When the operator cannot answer: `Fail` (default) rejects SMI and Trellis
    /// resources that were not validated; `Ignore` admits them unchecked.
    pub failure_policy: FailurePolicy,
    /// How long the API server waits for each webhook, 1-30 seconds.
    #[schemars(range(min = 1, max = 30))]
    pub timeout_seconds: u32,
    /// Sidecar injection (MutatingWebhookConfiguration `trellis-injection`).
    pub injection: Injection,
}

impl Default for Webhook {
    fn default() -> Self {
        Self {
            failure_policy: FailurePolicy::Fail,
            timeout_seconds: 10,
            injection: Injection::default(),
        }
    }
}

/// Sidecar injection for pods in namespaces labelled `trellis.dev/inject=enabled` and
/// pods labelled so; pods labelled `trellis.dev/inject=disabled` are left alone.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Injection {
    /// Install the injection webhook. Off: use `trellis inject` on manifests instead.
    pub enabled: bool,
    /// When the operator cannot answer: `Ignore` (default) starts the pod without a
    /// proxy; `Fail` refuses to create it (a broken webhook then stops opted-in pods).
    pub failure_policy: FailurePolicy,
}

impl Default for Injection {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_policy: FailurePolicy::Ignore,
        }
    }
}

/// How the proxy joins a pod. `native`: a native sidecar (an init container with
/// `restartPolicy: Always`, Kubernetes 1.29+) that starts before and stops after the app;
/// `init-container`: an ordinary container next to the app, after the `trellis-init` init
/// container; `auto`: native on Kubernetes 1.29 and later, else `init-container`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "kebab-case")]
pub enum SidecarMode {
    #[default]
    Auto,
    Native,
    InitContainer,
}

/// The injected proxy (`trellis-proxy`), rendered into the ConfigMap `trellis-inject`.
/// Pods can override the skip lists and resources with `trellis.dev/*` annotations.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Proxy {
    /// The proxy's image, `<registry>/proxy:<tag>`.
    pub image: ProxyImage,
    /// The proxy container's resources.
    pub resources: ProxyResources,
    /// How the proxy joins a pod: `auto` (default), `native` or `init-container`.
    pub sidecar_mode: SidecarMode,
    /// The user id the proxy runs as; its own traffic is not intercepted.
    #[schemars(range(min = 1))]
    pub uid: u32,
    /// Outbound ports not sent through the proxy (e.g. a database on 5432).
    pub skip_outbound_ports: Vec<Port>,
    /// Inbound ports not sent through the proxy.
    pub skip_inbound_ports: Vec<Port>,
    /// Destination CIDRs not sent through the proxy (e.g. `169.254.169.254/32`).
    pub skip_outbound_cidrs: Vec<String>,
}

impl Default for Proxy {
    fn default() -> Self {
        Self {
            image: ProxyImage::default(),
            resources: ProxyResources::default(),
            sidecar_mode: SidecarMode::Auto,
            uid: 2102,
            skip_outbound_ports: Vec::new(),
            skip_inbound_ports: Vec::new(),
            skip_outbound_cidrs: Vec::new(),
        }
    }
}

/// A TCP port, 1-65535.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(transparent)]
pub struct Port(#[schemars(range(min = 1, max = 65535))] pub u16);

/// The proxy image; empty fields take the operator's (`image.*`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyImage {
    /// Registry holding the `proxy` image; empty: `image.registry`.
    pub registry: String,
    /// Image tag; empty: `image.tag`, else the chart's appVersion.
    pub tag: String,
    /// When the kubelet pulls the proxy image.
    pub pull_policy: PullPolicy,
}

/// The proxy container's requests and limits.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyResources {
    /// What the scheduler reserves for each proxy.
    pub requests: CpuMemory,
    /// The most each proxy may use.
    pub limits: CpuMemory,
}

impl Default for ProxyResources {
    fn default() -> Self {
        Self {
            requests: CpuMemory {
                cpu: Some("10m".into()),
                memory: Some("32Mi".into()),
            },
            limits: CpuMemory {
                cpu: None,
                memory: Some("128Mi".into()),
            },
        }
    }
}

/// CPU and memory; unset: none.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CpuMemory {
    /// CPU, e.g. `10m`.
    pub cpu: Option<Quantity>,
    /// Memory, e.g. `32Mi`.
    pub memory: Option<Quantity>,
}

/// The default MeshConfig: `create` and the MeshConfig's `spec`, whose fields are the
/// CRD's (smi-crds `MeshConfigSpec`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// Render the MeshConfig `default`. Turn off when it is kept elsewhere (e.g. in Git,
    /// synced by ArgoCD).
    #[serde(default = "yes")]
    pub create: bool,
    /// The MeshConfig's spec.
    #[serde(flatten)]
    pub spec: MeshConfigSpec,
}

fn yes() -> bool {
    true
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            create: true,
            spec: default_mesh_config_spec(),
        }
    }
}

/// The spec of a MeshConfig with no field set (the CRD's defaults).
pub fn default_mesh_config_spec() -> MeshConfigSpec {
    serde_json::from_value(serde_json::json!({})).expect("every MeshConfig field has a default")
}

/// The ServiceMonitor `trellis-operator`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServiceMonitor {
    /// Render it (needs the Prometheus Operator's CRDs).
    pub enabled: bool,
    /// Scrape interval, e.g. `30s`.
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: String,
    /// Labels your Prometheus selects ServiceMonitors by (e.g. `release: prometheus`).
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitor {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "30s".to_owned(),
            labels: BTreeMap::new(),
        }
    }
}

/// The PodMonitor `trellis-proxies`: every pod's `trellis-proxy` container, port 4191.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PodMonitor {
    /// Render it (needs the Prometheus Operator's CRDs).
    pub enabled: bool,
    /// Scrape interval, e.g. `30s`.
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: String,
    /// Labels your Prometheus selects PodMonitors by.
    pub labels: BTreeMap<String, String>,
    /// Namespaces whose proxies are scraped; empty: every namespace.
    pub namespaces: Vec<String>,
}

impl Default for PodMonitor {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "30s".to_owned(),
            labels: BTreeMap::new(),
            namespaces: Vec::new(),
        }
    }
}

/// The PodDisruptionBudget `trellis-operator`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PodDisruptionBudget {
    /// Render it. Use with `replicas` of 2 or more: with one replica and
    /// `minAvailable: 1`, node drains wait for ever.
    pub enabled: bool,
    /// Operator pods that must stay up during voluntary disruptions: a count or a
    /// percentage such as `50%`.
    pub min_available: IntOrPercent,
}

impl Default for PodDisruptionBudget {
    fn default() -> Self {
        Self {
            enabled: false,
            min_available: IntOrPercent::Count(1),
        }
    }
}

/// A count or a percentage (`50%`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[schemars(crate = "k8s_openapi::schemars")]
#[serde(untagged)]
pub enum IntOrPercent {
    Count(u32),
    Percent(#[schemars(regex(pattern = r"^[0-9]{1,3}%$"))] String),
}
