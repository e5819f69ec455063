//! The static config file: the `trellis.proxy.v1` model in its protobuf JSON mapping (proto
//! field names), written as YAML or JSON. For local debugging, demos and tests.
//!
//! ```yaml
//! outbound:
//!   - authority: web.shop.svc.cluster.local
//!     routes: [{name: default, backends: [{backend: web, weight: 1}]}]
//!     backends: [{name: web, endpoints: [{address: {ip: 127.0.0.1, port: 8081}}]}]
//! inbound:                         # optional; without it every inbound request is allowed
//!   default_policy: DEFAULT_POLICY_DENY
//!   ports: [{port: 8080, allow_unmeshed: true, authorizations: [{name: all}]}]
//! ```
//!
//! A file is taken whole or not at all; its error names the file, the field and the reason.

use std::path::Path;

use serde::Deserialize;
use trellis_proxy_api::v1 as api;

use super::{Inbound, Outbound};

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// One entry per destination, found by `authority`.
    #[serde(default)]
    pub outbound: Vec<api::OutboundConfig>,
    /// The workload's inbound policy; absent: every inbound request is allowed.
    #[serde(default)]
    pub inbound: Option<api::InboundConfig>,
}

/// A validated file: its destinations, and its inbound policy.
#[derive(Debug)]
pub struct Parsed {
    pub outbound: Vec<(String, Outbound, api::OutboundConfig)>,
    pub inbound: (Inbound, api::InboundConfig),
}

/// The version of the policy in force when a file has no `inbound:` section.
pub const NO_INBOUND_SECTION: &str = "file-without-inbound";

/// A file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FileError {
    pub file: String,
    pub message: String,
}

/// Parses and validates a config file's text.
pub fn parse(file: &Path, text: &str) -> Result<Parsed, FileError> {
    let fail = |message: String| FileError {
        file: file.display().to_string(),
        message,
    };
    let value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(text).map_err(|e| fail(format!("not YAML or JSON: {e}")))?
    };
    let value = versions_as_text(value);
    let parsed: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let mut inner = e.into_inner().to_string();
        let field = path.rsplit('.').next().unwrap_or_default();
        if DURATION_FIELDS.contains(&field) {
            inner.push_str("; durations are seconds with an `s`, e.g. \"0.5s\" or \"30s\"");
        }
        if path == "." {
            fail(inner)
        } else {
            fail(format!("{path}: {inner}"))
        }
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, mut source) in parsed.outbound.into_iter().enumerate() {
        let authority = source.authority.to_ascii_lowercase();
        if authority.is_empty() {
            return Err(fail(format!(
                "outbound[{i}].authority: required (the Host or :authority requests use)"
            )));
        }
        if !seen.insert(authority.clone()) {
            return Err(fail(format!(
                "outbound[{i}].authority: {authority:?} appears twice"
            )));
        }
        if source.version.is_empty() {
            source.version = content_version(&source);
        }
        let config =
            Outbound::try_from(source.clone()).map_err(|e| fail(format!("outbound[{i}].{e}")))?;
        out.push((authority, config, source));
    }
    let inbound = match parsed.inbound {
        Some(mut source) => {
            if source.version.is_empty() {
                source.version = content_version(&source);
            }
            let config =
                Inbound::try_from(source.clone()).map_err(|e| fail(format!("inbound.{e}")))?;
            (config, source)
        }
        None => (
            Inbound::permissive(NO_INBOUND_SECTION),
            api::InboundConfig {
                version: NO_INBOUND_SECTION.into(),
                default_policy: api::DefaultPolicy::Allow as i32,
                ..Default::default()
            },
        ),
    };
    Ok(Parsed {
        outbound: out,
        inbound,
    })
}

/// Fields of the model that hold a `google.protobuf.Duration`.
const DURATION_FIELDS: [&str; 9] = [
    "timeout",
    "per_try_timeout",
    "base",
    "max",
    "window",
    "delay",
    "decay",
    "base_ejection_time",
    "max_ejection_time",
];

/// `version: 7` is meant as the text "7".
fn versions_as_text(mut value: serde_json::Value) -> serde_json::Value {
    let text = |entry: &mut serde_json::Value| {
        if let Some(v) = entry.get_mut("version")
            && v.is_number()
        {
            *v = serde_json::Value::String(v.to_string());
        }
    };
    if let Some(list) = value.get_mut("outbound").and_then(|o| o.as_array_mut()) {
        list.iter_mut().for_each(text);
    }
    if let Some(inbound) = value.get_mut("inbound") {
        text(inbound);
    }
    value
}

/// A version derived from the content, so an edit shows as a new version on `/config`.
fn content_version(source: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(source).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("file-{:08x}", hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<(String, Outbound, api::OutboundConfig)>, String> {
        parse_file(text).map(|p| p.outbound)
    }

    fn parse_file(text: &str) -> Result<Parsed, String> {
        parse(Path::new("proxy.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_yaml_file_gives_validated_destinations() {
        let out = parse_str(
            r#"
outbound:
  - authority: Web.Shop
    routes:
      - name: default
        timeout: "1.5s"
        matches: [{path_regex: "/api", methods: [GET]}]
        backends: [{backend: v1, weight: 3}]
    backends:
      - name: v1
        endpoints: [{address: {ip: 127.0.0.1, port: 8081}}]
        balancer: {round_robin: {}}
"#,
        )
        .unwrap();
        let (authority, config, _) = &out[0];
        assert_eq!(authority, "web.shop");
        assert!(config.version.starts_with("file-"));
        let route = &config.routes[0];
        assert_eq!(route.timeout, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(route.backends[0].1, 3);
        assert_eq!(route.backends[0].0.endpoints[0].address.port(), 8081);
    }

    #[test]
    fn a_duration_in_the_wrong_form_says_how_to_write_it() {
        let err = parse_str("outbound: [{authority: a, routes: [{name: r, timeout: 500ms}]}]")
            .unwrap_err();
        assert!(
            err.starts_with("proxy.yaml: outbound[0].routes[0].timeout: "),
            "{err}"
        );
        assert!(
            err.ends_with("durations are seconds with an `s`, e.g. \"0.5s\" or \"30s\""),
            "{err}"
        );
    }

    #[test]
    fn a_numeric_version_is_taken_as_text() {
        let out = parse_str("outbound: [{authority: a, version: 7}]").unwrap();
        assert_eq!(out[0].1.version, "7");
    }

    #[test]
    fn json_is_accepted_too() {
        let out = parse_str(r#"{"outbound": [{"authority": "a", "routes": []}]}"#).unwrap();
        assert_eq!(out[0].0, "a");
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let err = parse_str("outbound:\n  - authority: a\n    routs: []\n").unwrap_err();
        assert!(err.starts_with("proxy.yaml: outbound[0]"), "{err}");
        assert!(err.contains("routs"), "{err}");
    }

    #[test]
    fn a_model_error_names_the_destination_and_field() {
        let err = parse_str(
            "outbound:\n  - authority: a\n    routes: [{name: r, matches: [{path_regex: '('}]}]\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "proxy.yaml: outbound[0].routes[0].matches[0].path_regex: invalid regex"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_inbound_section_gives_the_policy() {
        let parsed = parse_file(
            r#"
inbound:
  version: 4
  default_policy: DEFAULT_POLICY_ALLOW_AUTHENTICATED
  ports:
    - port: 8080
      allow_unmeshed: true
      authorizations:
        - {name: web, identities: ["spiffe://cluster.local/ns/shop/sa/web"], routes: [{path_regex: /api}]}
"#,
        )
        .unwrap();
        let (inbound, source) = parsed.inbound;
        assert_eq!(
            (inbound.version.as_str(), source.version.as_str()),
            ("4", "4")
        );
        assert_eq!(
            inbound.default_policy,
            crate::config::DefaultPolicy::AllowAuthenticated
        );
        let port = inbound.port(8080).unwrap();
        assert!(port.allow_unmeshed);
        assert_eq!(&*port.authorizations[0].name, "web");
    }

    #[test]
    fn a_file_without_an_inbound_section_allows_every_inbound_request() {
        let (inbound, source) = parse_file("outbound: []").unwrap().inbound;
        assert_eq!(inbound.default_policy, crate::config::DefaultPolicy::Allow);
        assert!(inbound.ports.is_empty());
        assert_eq!(source.version, NO_INBOUND_SECTION);
    }

    #[test]
    fn an_inbound_error_names_the_section_and_field() {
        let err =
            parse_file("inbound: {ports: [{port: 8080, authorizations: [{identities: ['*']}]}]}")
                .unwrap_err();
        assert_eq!(
            err,
            "proxy.yaml: inbound.ports[0].authorizations[0].name: required (it names allowed requests in logs)"
        );
        let err = parse_file("inbound: {default_policy: DEFAULT_POLICY_MAYBE}").unwrap_err();
        assert!(
            err.starts_with("proxy.yaml: inbound.default_policy: "),
            "{err}"
        );
    }

    #[test]
    fn a_destination_without_authority_is_refused() {
        let err = parse_str("outbound: [{routes: []}]").unwrap_err();
        assert_eq!(
            err,
            "proxy.yaml: outbound[0].authority: required (the Host or :authority requests use)"
        );
    }
}
