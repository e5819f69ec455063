//! HTTPRouteGroup, TCPRoute and UDPRoute rules (SMI-SEMANTICS "HTTPRouteGroup matching").

use super::names::is_header_name;
use super::{Problem, check_port, duplicates};
use crate::specs::METHODS;
use crate::specs::http_route_group::HttpMatch;

pub(super) fn validate_http_route_group(matches: &[HttpMatch]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if matches.is_empty() {
        problems.push(Problem::warning(
            "spec.matches",
            "no matches: rules and splits that refer to this group select no requests",
        ));
    }
    for (i, m) in matches.iter().enumerate() {
        let at = |f: &str| format!("spec.matches[{i}].{f}");
        if m.name.is_empty() {
            problems.push(Problem::error(
                at("name"),
                "required: TrafficTarget rules refer to matches by name",
            ));
        }
        if let Some(message) = m.path_regex.as_deref().and_then(regex_error) {
            problems.push(Problem::error(at("pathRegex"), message));
        }
        for (k, method) in m.methods.iter().enumerate() {
            if !METHODS.contains(&method.as_str()) {
                problems.push(Problem::error(
                    at(&format!("methods[{k}]")),
                    format!(
                        "{method:?} is not an HTTP method; use one of {}",
                        METHODS.join(", ")
                    ),
                ));
            }
        }
        for (k, h) in m.headers.iter().enumerate() {
            let field = at(&format!("headers[{k}]"));
            if !is_header_name(&h.name) {
                problems.push(Problem::error(
                    field.clone(),
                    format!("{:?} is not a valid header name: use letters, digits and - (e.g. x-canary)", h.name),
                ));
            }
            if let Some(message) = regex_error(&h.value) {
                problems.push(Problem::error(
                    field,
                    format!("header {:?}: {message}", h.name),
                ));
            }
        }
        problems.extend(duplicates(
            &m.headers.0,
            |h| h.name.to_ascii_lowercase(),
            |k| at(&format!("headers[{k}]")),
            "header",
        ));
    }
    problems.extend(duplicates(
        matches,
        |m| &m.name,
        |i| format!("spec.matches[{i}].name"),
        "match name",
    ));
    problems
}

pub(super) fn validate_ports(ports: &[i64]) -> Vec<Problem> {
    let field = |k: usize| format!("spec.matches.ports[{k}]");
    let mut problems: Vec<Problem> = ports
        .iter()
        .enumerate()
        .filter_map(|(k, p)| check_port(field(k), *p))
        .collect();
    problems.extend(duplicates(ports, |p| *p, field, "port"));
    problems
}

/// The reason a regex does not compile, on one line, or `None` when it compiles.
pub(crate) fn regex_error(pattern: &str) -> Option<String> {
    let err = regex::Regex::new(pattern).err()?;
    let text = err.to_string();
    let reason = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default())
        .trim()
        .to_owned();
    Some(format!("invalid regex {pattern:?}: {reason} (RE2 syntax)"))
}
