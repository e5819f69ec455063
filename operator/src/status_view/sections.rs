//! The table view of `/status`, one section per subject:
//!
//! ```text
//! summary line       index revision, ready, counts
//! SOURCES            name, location, revision, synced, objects; extra fields and errors below
//! RESOURCES          kind, name, Accepted, ResolvedRefs, file:line, what is wrong
//! CANARIES           name, phase, canary weight, failed checks, version under analysis,
//!                    message; each metric's last value and verdict and the last event below
//! WORKLOADS          name, service account, addresses, inbound port, ready, labels
//! PROXIES            each watch of a connected proxy: version sent, acked, last NACK
//! ```
//!
//! Every field is read leniently: a missing field shows `-`, an unknown one is ignored
//! (sources show their extra fields under their row), so an operator newer or older than
//! this CLI still renders.

use serde_json::{Map, Value};

use super::table::{EMPTY, Table};

/// Rows are indented under their section's title.
const INDENT: &str = "  ";

/// The whole table view.
pub fn render(status: &Value) -> String {
    let mut out = summary(status);
    for (title, table) in [
        ("SOURCES", sources(status)),
        ("RESOURCES", resources(status)),
        ("CANARIES", canaries(status)),
        ("WORKLOADS", workloads(status)),
        ("PROXIES", proxies(status)),
    ] {
        out.push('\n');
        out.push_str(title);
        out.push('\n');
        table.render(INDENT, &mut out);
    }
    out
}

/// `Index revision 7, ready; services 2, endpoints 3, workloads 3, subscriptions 6`
fn summary(status: &Value) -> String {
    let revision = scalar(status.get("revision"));
    let ready = match status.get("ready").and_then(Value::as_bool) {
        Some(true) => "ready",
        Some(false) => "NOT READY (a source has not synced yet)",
        None => "readiness unknown",
    };
    let counts: Vec<String> = status
        .get("counts")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(what, n)| format!("{what} {}", scalar(Some(n))))
        .collect();
    let mut line = format!("Index revision {revision}, {ready}");
    if !counts.is_empty() {
        line.push_str("; ");
        line.push_str(&counts.join(", "));
    }
    line.push('\n');
    line
}

/// The fields of a source that have a column (or, for `errors`, lines of their own).
const SOURCE_COLUMNS: [&str; 6] = [
    "name", "location", "revision", "synced", "objects", "errors",
];

fn sources(status: &Value) -> Table {
    let mut table = Table::new(&["NAME", "LOCATION", "REVISION", "SYNCED", "OBJECTS"]);
    for source in items(status, "sources") {
        table.row(vec![
            scalar(source.get("name")),
            scalar(source.get("location")),
            short_revision(&scalar(source.get("revision"))),
            yes_no(source.get("synced")),
            scalar(source.get("objects")),
        ]);
        // Fields this CLI has no column for (a Git source's last attempt, ...).
        for (field, value) in source {
            if !SOURCE_COLUMNS.contains(&field.as_str()) && !value.is_null() {
                table.note(format!("{field}: {}", short_revision(&scalar(Some(value)))));
            }
        }
        for error in source.get("errors").map(list).unwrap_or_default() {
            table.note(format!("error: {}", scalar(Some(error))));
        }
    }
    table
}

fn resources(status: &Value) -> Table {
    let mut table = Table::new(&[
        "KIND",
        "NAMESPACE/NAME",
        "ACCEPTED",
        "RESOLVEDREFS",
        "FILE:LINE",
        "MESSAGE",
    ]);
    for resource in items(status, "resources") {
        let conditions = resource.get("conditions").map(list).unwrap_or_default();
        let condition = |type_: &str| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
                .map(|c| scalar(c.get("status")))
                .unwrap_or_else(|| EMPTY.to_owned())
        };
        table.row(vec![
            scalar(resource.get("kind")),
            namespaced(resource),
            condition("Accepted"),
            condition("ResolvedRefs"),
            origin(resource.get("origin")),
            problem(&conditions),
        ]);
    }
    table
}

fn canaries(status: &Value) -> Table {
    let mut table = Table::new(&[
        "NAMESPACE/NAME",
        "PHASE",
        "WEIGHT",
        "FAILED CHECKS",
        "TARGET",
        "MESSAGE",
    ]);
    for canary in items(status, "canaries") {
        let empty = Map::new();
        let s = canary
            .get("status")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let weight = match s.get("canaryWeight") {
            Some(w) if !w.is_null() => format!("{}%", scalar(Some(w))),
            _ => EMPTY.to_owned(),
        };
        table.row(vec![
            namespaced(canary),
            scalar(s.get("phase")),
            weight,
            scalar(s.get("failedChecks")),
            scalar(s.get("target")),
            scalar(s.get("message")),
        ]);
        for metric in s.get("metrics").map(list).unwrap_or_default() {
            table.note(metric_line(metric));
        }
        if let Some(event) = canary
            .get("events")
            .and_then(Value::as_array)
            .and_then(|e| e.last())
        {
            table.note(format!(
                "last event: {}: {}",
                scalar(event.get("reason")),
                scalar(event.get("message"))
            ));
        }
    }
    table
}

/// `request-success-rate 99.2 (min 99): Pass`, with the message of a metric without data.
fn metric_line(metric: &Value) -> String {
    let range = metric.get("thresholdRange");
    let bound = |b: &str| range.and_then(|r| r.get(b)).filter(|v| !v.is_null());
    let bounds: Vec<String> = [("min", bound("min")), ("max", bound("max"))]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name} {}", scalar(Some(v)))))
        .collect();
    let mut line = format!(
        "{} {} ({}): {}",
        scalar(metric.get("name")),
        scalar(metric.get("value")),
        bounds.join(", "),
        scalar(metric.get("verdict"))
    );
    if let Some(message) = metric.get("message").and_then(Value::as_str) {
        line.push_str(&format!(" - {message}"));
    }
    line
}

/// `Reason: message` of the first condition that is not `True`; empty when all are.
fn problem(conditions: &[&Value]) -> String {
    let Some(bad) = conditions
        .iter()
        .find(|c| c.get("status").and_then(Value::as_str) != Some("True"))
    else {
        return String::new();
    };
    let message = bad.get("message").and_then(Value::as_str).unwrap_or("");
    match bad.get("reason").and_then(Value::as_str) {
        Some(reason) if !reason.is_empty() => format!("{reason}: {message}"),
        _ => message.to_owned(),
    }
}

/// `file:line`, or where the resource came from when no file is known.
fn origin(origin: Option<&Value>) -> String {
    let Some(origin) = origin.filter(|o| o.is_object()) else {
        return EMPTY.to_owned();
    };
    match (origin.get("file"), origin.get("line")) {
        (Some(Value::String(file)), Some(line)) if !line.is_null() => {
            format!("{file}:{}", scalar(Some(line)))
        }
        (Some(Value::String(file)), _) => file.clone(),
        _ => scalar(origin.get("source")),
    }
}

fn workloads(status: &Value) -> Table {
    let mut table = Table::new(&[
        "NAMESPACE/NAME",
        "SERVICE ACCOUNT",
        "ADDRESSES",
        "INBOUND PORT",
        "READY",
        "LABELS",
    ]);
    for workload in items(status, "workloads") {
        table.row(vec![
            namespaced(workload),
            scalar(field(workload, &["serviceAccount", "service_account"])),
            scalar(workload.get("addresses")),
            scalar(field(workload, &["inboundPort", "inbound_port"])),
            yes_no(workload.get("ready")),
            labels(workload.get("labels")),
        ]);
    }
    table
}

/// `app=web,version=v2`, sorted by key.
fn labels(labels: Option<&Value>) -> String {
    let Some(labels) = labels.and_then(Value::as_object).filter(|l| !l.is_empty()) else {
        return EMPTY.to_owned();
    };
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", scalar(Some(v))))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn proxies(status: &Value) -> Table {
    let mut table = Table::new(&[
        "WORKLOAD",
        "KIND",
        "WATCHES",
        "VERSION",
        "ACKED",
        "PUSHES",
        "LAST NACK",
    ]);
    let mut watches = items(status, "subscriptions");
    watches.sort_by_key(|w| scalar(w.get("workload")));
    for watch in watches {
        let sent = field(watch, &["sent_version", "sentVersion"]).and_then(Value::as_str);
        let applied = field(watch, &["applied_version", "appliedVersion"]).and_then(Value::as_str);
        let acked = match (sent, applied) {
            (None, _) => EMPTY.to_owned(),
            (Some(sent), Some(applied)) if sent == applied => "yes".to_owned(),
            (Some(_), Some(applied)) => format!("no (applied {applied})"),
            (Some(_), None) => "no".to_owned(),
        };
        table.row(vec![
            scalar(watch.get("workload")),
            scalar(watch.get("kind")),
            scalar(watch.get("target")),
            sent.unwrap_or(EMPTY).to_owned(),
            acked,
            scalar(watch.get("pushes")),
            nack(watch.get("rejected")),
        ]);
    }
    table
}

/// `version: reason` of the last NACK (a `[version, reason]` pair on the wire).
fn nack(rejected: Option<&Value>) -> String {
    match rejected {
        Some(Value::Array(pair)) if pair.len() == 2 => {
            format!("{}: {}", scalar(pair.first()), scalar(pair.get(1)))
        }
        Some(Value::Object(nack)) if nack.contains_key("reason") => format!(
            "{}: {}",
            scalar(nack.get("version")),
            scalar(nack.get("reason"))
        ),
        other => scalar(other),
    }
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn namespaced(object: &Map<String, Value>) -> String {
    let name = scalar(object.get("name"));
    match object.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name,
    }
}

/// The objects of a top-level list (none when it is missing or not a list).
fn items<'a>(status: &'a Value, key: &str) -> Vec<&'a Map<String, Value>> {
    status
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect()
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// The first of several spellings of a field that is present.
fn field<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| object.get(*n).filter(|v| !v.is_null()))
}

/// A value as one cell: strings as they are, lists joined with `,`, `-` when missing.
fn scalar(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => EMPTY.to_owned(),
        Some(Value::String(s)) if s.is_empty() => EMPTY.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => EMPTY.to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| scalar(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn yes_no(value: Option<&Value>) -> String {
    match value.and_then(Value::as_bool) {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => scalar(value),
    }
}

/// A Git commit id (40 or 64 hex digits) shortened to 12, as `git log --oneline` would;
/// anything else as it is.
pub fn short_revision(revision: &str) -> String {
    if revision.len() >= 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        revision[..12].to_owned()
    } else {
        revision.to_owned()
    }
}
