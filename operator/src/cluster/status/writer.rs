//! Writes the conditions of every SMI/Trellis resource back to the API server (server-side
//! apply of `status`, field manager `trellis-operator`), and Events for problems. Only the
//! leader writes.
//!
//! ```text
//! index change | leader change | every second (canary runs)
//!   -> leader? no: nothing
//!   -> conditions(snapshot) for resources read from the API server
//!        - a False condition not reported yet -> Warning Event (reason, message)
//!        - CRD without a status subresource -> Events only (said once in the log)
//!        - desired status == what the API server has or what was written -> nothing
//!        - else PATCH .../<plural>/<name>/status?fieldManager=trellis-operator&force=true
//! ```

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::watch;

use super::desired;
use crate::canary::controller::SharedViews;
use crate::cluster::follow::{Observed, ObservedObjects, SOURCE};
use crate::cluster::kinds::Installed;
use crate::cluster::lease;
use crate::compile::conditions::{ResourceConditions, conditions};
use crate::index::{Index, ResourceRef, Snapshot};

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "trellis-operator";

/// How often canary runs are looked at for a new status (their runs tick on their own).
const CANARY_EVERY: Duration = Duration::from_secs(1);

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub written: usize,
    pub events: usize,
    pub failed: usize,
}

pub struct StatusWriter {
    client: Client,
    kinds: HashMap<&'static str, Installed>,
    observed: ObservedObjects,
    canaries: Option<SharedViews>,
    leader: watch::Receiver<bool>,
    recorder: Recorder,
    /// The status last written per resource.
    written: HashMap<ResourceRef, Value>,
    /// The problem last reported per resource (`reason: message`).
    reported: HashMap<ResourceRef, String>,
    /// The canary event last published per Canary (its time and reason).
    canary_events: HashMap<ResourceRef, (Time, String)>,
    /// Kinds whose missing status subresource was logged.
    said_no_status: HashSet<&'static str>,
}

impl StatusWriter {
    pub fn new(
        client: Client,
        installed: &[Installed],
        observed: ObservedObjects,
        leader: watch::Receiver<bool>,
        instance: &str,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kinds: installed.iter().map(|i| (i.kind.kind, i.clone())).collect(),
            observed,
            canaries: None,
            leader,
            written: HashMap::new(),
            reported: HashMap::new(),
            canary_events: HashMap::new(),
            said_no_status: HashSet::new(),
        }
    }

    /// Canary runs: their phase, weights and metrics go into each Canary's status, their
    /// transitions become Events.
    pub fn with_canaries(mut self, views: SharedViews) -> Self {
        self.canaries = Some(views);
        self
    }

    /// Writes what changed, if this replica leads.
    pub async fn pass(&mut self, snapshot: &Snapshot) -> Pass {
        let mut pass = Pass::default();
        if !*self.leader.borrow() {
            return pass;
        }
        let now = Time(lease::now());
        let runs = self.canary_runs();
        for rc in conditions(snapshot) {
            if rc.origin.source != SOURCE {
                continue;
            }
            let Some(installed) = self.kinds.get(rc.resource.kind).cloned() else {
                continue;
            };
            let Some(observed) = self.observed_of(&rc.resource) else {
                continue;
            };
            let reference = object_reference(&rc.resource, &observed);
            pass.events += self.report_problem(&rc, &reference).await;
            if let Some(view) = runs.get(&rc.resource) {
                pass.events += self
                    .report_canary_events(&rc.resource, view, &reference)
                    .await;
            }
            if !installed.status {
                if self.said_no_status.insert(installed.kind.kind) {
                    eprintln!(
                        "trellis operator: CRD {} has no status subresource at {} (installed by another mesh?): problems with {}s are reported as Events only",
                        installed.kind.crd_name(),
                        installed.version,
                        installed.kind.kind
                    );
                }
                continue;
            }
            let status = match runs.get(&rc.resource) {
                Some(view) => desired::canary_status(
                    &view.status,
                    &rc.conditions,
                    observed.generation,
                    &observed.status,
                    &now,
                ),
                None => {
                    desired::status(&rc.conditions, observed.generation, &observed.status, &now)
                }
            };
            if status == observed.status || self.written.get(&rc.resource) == Some(&status) {
                continue;
            }
            match self
                .patch(&installed, &rc.resource, &observed, &status)
                .await
            {
                Ok(()) => {
                    pass.written += 1;
                    self.written.insert(rc.resource.clone(), status);
                }
                Err(e) => {
                    pass.failed += 1;
                    eprintln!(
                        "trellis operator: writing the status of {}: {e}",
                        rc.resource
                    );
                }
            }
        }
        let live: HashSet<ResourceRef> = self
            .observed
            .lock()
            .expect("observed objects")
            .keys()
            .cloned()
            .collect();
        self.written.retain(|r, _| live.contains(r));
        self.reported.retain(|r, _| live.contains(r));
        pass
    }

    fn observed_of(&self, r: &ResourceRef) -> Option<Observed> {
        self.observed
            .lock()
            .expect("observed objects")
            .get(r)
            .cloned()
    }

    fn canary_runs(&self) -> HashMap<ResourceRef, crate::canary::controller::CanaryView> {
        let Some(views) = &self.canaries else {
            return HashMap::new();
        };
        views
            .lock()
            .expect("canary views")
            .iter()
            .map(|v| {
                let r = ResourceRef {
                    kind: smi_crds::trellis::canary::KIND,
                    namespace: Some(v.namespace.as_str().into()),
                    name: v.name.as_str().into(),
                };
                (r, v.clone())
            })
            .collect()
    }

    async fn patch(
        &self,
        installed: &Installed,
        resource: &ResourceRef,
        observed: &Observed,
        status: &Value,
    ) -> kube::Result<()> {
        let ar = installed.api_resource();
        let api: Api<DynamicObject> = match &resource.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let body = desired::apply_body(resource, &observed.api_version, status.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch_status(&resource.name, &params, &Patch::Apply(body))
            .await
            .map(|_| ())
    }

    /// A Warning Event for the first False condition, once per distinct problem.
    async fn report_problem(&mut self, rc: &ResourceConditions, at: &ObjectReference) -> usize {
        let Some(problem) = rc.conditions.iter().find(|c| !c.status) else {
            self.reported.remove(&rc.resource);
            return 0;
        };
        let said = format!("{}: {}", problem.reason, problem.message);
        if self.reported.get(&rc.resource) == Some(&said) {
            return 0;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: problem.reason.to_owned(),
            note: Some(truncate(&problem.message)),
            action: format!("{}{}", problem.type_, "Check"),
            secondary: None,
        };
        match self.recorder.publish(&event, at).await {
            Ok(()) => {
                self.reported.insert(rc.resource.clone(), said);
                1
            }
            Err(e) => {
                eprintln!("trellis operator: an Event for {}: {e}", rc.resource);
                0
            }
        }
    }

    /// A canary run's transitions (Started, Advanced, RolledBack, ...) as Events.
    async fn report_canary_events(
        &mut self,
        resource: &ResourceRef,
        view: &crate::canary::controller::CanaryView,
        at: &ObjectReference,
    ) -> usize {
        let last = self.canary_events.get(resource).cloned();
        let fresh: Vec<_> = view
            .events
            .iter()
            .filter(|e| {
                last.as_ref().is_none_or(|(t, reason)| {
                    e.time.0 > t.0 || (e.time == *t && e.reason != *reason)
                })
            })
            .cloned()
            .collect();
        let mut published = 0;
        for e in fresh {
            let warning = matches!(e.reason.as_str(), "CheckFailed" | "RolledBack");
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.clone(),
                note: Some(truncate(&e.message)),
                action: "Progress".into(),
                secondary: None,
            };
            if self.recorder.publish(&event, at).await.is_ok() {
                published += 1;
            }
            self.canary_events
                .insert(resource.clone(), (e.time.clone(), e.reason.clone()));
        }
        published
    }

    /// Writes on every index change, leader change and, for canary runs, every second.
    pub async fn run(mut self, index: Index) {
        let mut snapshots = index.watch();
        let mut leader = self.leader.clone();
        let mut canary_ticks = tokio::time::interval(CANARY_EVERY);
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            self.pass(&snapshot).await;
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
                _ = canary_ticks.tick(), if self.canaries.is_some() => {}
            }
        }
    }
}

/// Event notes are limited to 1 kB by the API server.
fn truncate(message: &str) -> String {
    const MAX: usize = 1000;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

fn object_reference(r: &ResourceRef, observed: &Observed) -> ObjectReference {
    ObjectReference {
        api_version: Some(observed.api_version.clone()),
        kind: Some(r.kind.to_owned()),
        name: Some(r.name.to_string()),
        namespace: r.namespace.as_deref().map(str::to_owned),
        uid: observed.uid.clone(),
        ..ObjectReference::default()
    }
}
