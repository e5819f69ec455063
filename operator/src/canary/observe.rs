//! What a tick reads from the index (pure): the version each backend runs and the
//! state-machine spec a Canary's `analysis` means.
//!
//! The version is the value of the Canary's target label (default `version`) on the ready
//! workloads behind a backend Service. Workloads that disagree mean a rollout is under way:
//! the backend is not ready and its version is not taken until they agree, as Flagger
//! waits for a Deployment's rollout to finish.

use std::collections::BTreeSet;
use std::time::Duration;

use smi_crds::trellis::canary::{Canary, DEFAULT_TARGET_LABEL};
use smi_crds::validate::parse_duration;

use super::machine::{Spec, Steps};
use crate::index::{ObjKey, Reader};

/// Threshold without `analysis.threshold`.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// Progress deadline without `progressDeadline`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// What runs behind one backend Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// Every ready workload carries this value of the target label.
    Runs(String),
    /// Ready workloads carry different values (a rollout is under way).
    Mixed(Vec<String>),
    /// Ready workloads without the target label.
    Unlabelled { label: String },
    /// No ready workload (or no such Service).
    NoReadyWorkloads,
}

impl Version {
    pub fn runs(&self) -> Option<&str> {
        match self {
            Version::Runs(v) => Some(v),
            _ => None,
        }
    }

    /// Why the backend is not ready, for status.
    pub fn why_not(&self, service: &ObjKey) -> Option<String> {
        match self {
            Version::Runs(_) => None,
            Version::Mixed(values) => Some(format!(
                "Service {service}: its workloads run different versions ({}): waiting for the rollout to finish",
                values.join(", ")
            )),
            Version::Unlabelled { label } => Some(format!(
                "Service {service}: its ready workloads carry no {label:?} label; label them (or set spec.targetLabel) so Trellis can tell versions apart"
            )),
            Version::NoReadyWorkloads => Some(format!("Service {service} has no ready workloads")),
        }
    }
}

/// The target label of a Canary.
pub fn target_label(canary: &Canary) -> &str {
    canary
        .spec
        .target_label
        .as_deref()
        .unwrap_or(DEFAULT_TARGET_LABEL)
}

/// The version behind `service`, read from its ready endpoints.
pub fn version(reader: &Reader<'_>, service: &ObjKey, label: &str) -> Version {
    let Some(endpoints) = reader.endpoints(service) else {
        return Version::NoReadyWorkloads;
    };
    let mut values = BTreeSet::new();
    let mut any = false;
    for endpoint in endpoints.ready() {
        any = true;
        if let Some(v) = endpoint.labels.get(label) {
            values.insert(v.clone());
        }
    }
    match (any, values.len()) {
        (false, _) => Version::NoReadyWorkloads,
        (true, 0) => Version::Unlabelled {
            label: label.to_owned(),
        },
        (true, 1) => Version::Runs(values.into_iter().next().expect("one value")),
        (true, _) => Version::Mixed(values.into_iter().collect()),
    }
}

/// The state-machine spec of a (validated) Canary.
pub fn spec(canary: &Canary) -> Spec {
    let analysis = &canary.spec.analysis;
    let steps = if let Some(n) = analysis.iterations {
        Steps::Iterations(n)
    } else if !analysis.step_weights.is_empty() {
        Steps::Listed(analysis.step_weights.clone())
    } else {
        Steps::Linear {
            step: analysis.step_weight.unwrap_or(10).clamp(1, 100),
            max: analysis.max_weight.unwrap_or(100).clamp(1, 100),
        }
    };
    Spec {
        threshold: analysis.threshold.unwrap_or(DEFAULT_THRESHOLD).max(1),
        steps,
        progress_deadline: canary
            .spec
            .progress_deadline
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE),
    }
}

/// The analysis interval of a (validated) Canary.
pub fn interval(canary: &Canary) -> Duration {
    parse_duration(&canary.spec.analysis.interval).unwrap_or(Duration::from_secs(60))
}
