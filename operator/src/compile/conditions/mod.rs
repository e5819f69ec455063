//! Conditions: the status of every SMI/Trellis resource Trellis read, as `trellis status`
//! shows it and the Kubernetes status writer publishes it.
//!
//! ```text
//! snapshot.statuses() --rejected--> Accepted False Invalid (every problem; whether the
//!                     |                                      previous version stays)
//!                     +--accepted--> Accepted True (warnings listed)
//!                                    | TrafficSplit without matches, not the one in
//!                                    |   force for its root -> Accepted False Conflicted
//!                                    + TrafficSplit, TrafficTarget, TrafficPolicy,
//!                                      Canary: ResolvedRefs True | False (refs.rs)
//! ```
//!
//! Condition types and reasons are `smi_crds::conditions`; docs/status.md lists them with
//! example messages and what to do.

mod refs;
#[cfg(test)]
mod tests;

use serde::{Serialize, Serializer};
use smi_crds::conditions::{reasons, types};
use smi_crds::split::TrafficSplit;

use super::outbound::effective_default_split;
use crate::index::{ObjKey, Origin, Reader, ResourceRef, ResourceStatus, Snapshot, split_root};

/// The conditions of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceConditions {
    #[serde(serialize_with = "resource_ref")]
    pub resource: ResourceRef,
    pub origin: Origin,
    /// `Accepted`, then `ResolvedRefs` for kinds that refer to other resources.
    pub conditions: Vec<Condition>,
}

/// One standard condition (`type`, `status`, `reason`, `message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Serialized as `"True"` / `"False"`, as Kubernetes writes it.
    #[serde(serialize_with = "true_false")]
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The status conditions of every SMI/Trellis resource in the snapshot (what `trellis
/// status` shows and the Kubernetes status writer will publish), sorted by resource.
pub fn conditions(snapshot: &Snapshot) -> Vec<ResourceConditions> {
    let reader = snapshot.reader();
    snapshot
        .statuses()
        .into_iter()
        .map(|(resource, status)| ResourceConditions {
            resource: resource.clone(),
            origin: status.origin.clone(),
            conditions: of_resource(snapshot, &reader, resource, status),
        })
        .collect()
}

fn of_resource(
    snapshot: &Snapshot,
    reader: &Reader<'_>,
    resource: &ResourceRef,
    status: &ResourceStatus,
) -> Vec<Condition> {
    if !status.accepted {
        return vec![invalid(status)];
    }
    let key = ObjKey {
        namespace: resource.namespace.clone().unwrap_or_default(),
        name: resource.name.clone(),
    };
    let ns = &key.namespace;
    match resource.kind {
        smi_crds::split::KIND => match snapshot.traffic_split(&key) {
            Some(ts) => vec![
                conflicted(reader, &key, ts).unwrap_or_else(|| accepted(status)),
                resolved_refs(refs::split(reader, ns, ts)),
            ],
            None => vec![accepted(status)],
        },
        smi_crds::access::KIND => match snapshot.traffic_target(&key) {
            Some(tt) => vec![
                accepted(status),
                resolved_refs(refs::target(reader, ns, tt)),
            ],
            None => vec![accepted(status)],
        },
        smi_crds::trellis::traffic_policy::KIND => match snapshot.traffic_policy(&key) {
            Some(tp) => vec![
                accepted(status),
                resolved_refs(refs::policy(reader, ns, tp)),
            ],
            None => vec![accepted(status)],
        },
        smi_crds::trellis::canary::KIND => match snapshot.canary(&key) {
            Some(c) => vec![accepted(status), resolved_refs(refs::canary(reader, ns, c))],
            None => vec![accepted(status)],
        },
        _ => vec![accepted(status)],
    }
}

/// A version with errors is not applied: `Accepted` False, reason `Invalid`, every problem
/// as `field: message` (warnings marked), and whether the previous version stays in force.
fn invalid(status: &ResourceStatus) -> Condition {
    let mut parts: Vec<String> = status.problems.iter().map(ToString::to_string).collect();
    parts.push(
        if status.previous_in_force {
            "the previous version stays in force"
        } else {
            "no version of it is in force"
        }
        .to_owned(),
    );
    Condition {
        type_: types::ACCEPTED,
        status: false,
        reason: reasons::INVALID,
        message: parts.join("; "),
    }
}

/// `Accepted` True; warnings, if any, in the message.
fn accepted(status: &ResourceStatus) -> Condition {
    let warnings: Vec<String> = status.problems.iter().map(ToString::to_string).collect();
    let message = if warnings.is_empty() {
        "accepted and in force".to_owned()
    } else {
        format!("accepted and in force; {}", warnings.join("; "))
    };
    Condition {
        type_: types::ACCEPTED,
        status: true,
        reason: reasons::ACCEPTED,
        message,
    }
}

/// SMI Routing 5: at most one TrafficSplit without `matches` applies to a root Service, the
/// one outbound compiles ([`effective_default_split`]: the oldest by creationTimestamp,
/// then by name). Every other split without matches on that root is `Accepted` False,
/// reason `Conflicted`, naming the split in force.
fn conflicted(reader: &Reader<'_>, key: &ObjKey, ts: &TrafficSplit) -> Option<Condition> {
    if !ts.spec.matches.is_empty() {
        return None;
    }
    let root = split_root(&key.namespace, &ts.spec.service);
    let splits = reader.splits_of(&root);
    let (in_force, _) = splits[effective_default_split(&splits)?];
    if in_force == &*key.name || !splits.iter().any(|(name, _)| *name == &*key.name) {
        return None;
    }
    Some(Condition {
        type_: types::ACCEPTED,
        status: false,
        reason: reasons::CONFLICTED,
        message: format!(
            "TrafficSplit {ns}/{in_force} also splits Service {root} without matches and \
             applies (only one split without matches applies to a root Service: the oldest \
             by creationTimestamp, then by name); this one is ignored: merge it into \
             {in_force:?}, delete it, or give it matches",
            ns = key.namespace,
        ),
    })
}

/// `ResolvedRefs` True, or False with the reason of the first missing reference and every
/// missing reference in the message.
fn resolved_refs(missing: Vec<refs::Missing>) -> Condition {
    match missing.first() {
        None => Condition {
            type_: types::RESOLVED_REFS,
            status: true,
            reason: reasons::RESOLVED_REFS,
            message: "every referenced resource exists".to_owned(),
        },
        Some(first) => Condition {
            type_: types::RESOLVED_REFS,
            status: false,
            reason: first.reason,
            message: missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
    }
}

fn true_false<S: Serializer>(status: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *status { "True" } else { "False" })
}

/// `{kind, namespace, name}` (no namespace for cluster-scoped kinds).
fn resource_ref<S: Serializer>(r: &ResourceRef, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Ref<'a> {
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
        name: &'a str,
    }
    Ref {
        kind: r.kind,
        namespace: r.namespace.as_deref(),
        name: &r.name,
    }
    .serialize(s)
}
