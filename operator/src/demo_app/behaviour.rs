//! How the demo app treats the requests it serves: how long it waits before answering and
//! how often it fails. Parsed from the command line at start, shown by `GET /_demo/config`
//! and changed by `POST /_demo/config?error-rate=..&latency=..`; the same parsers and the
//! same messages serve both.

use std::time::Duration;

use serde::Serialize;

/// The query parameters `POST /_demo/config` accepts.
pub mod params {
    pub const ERROR_RATE: &str = "error-rate";
    pub const LATENCY: &str = "latency";
}

/// A query parameter (or flag) with a value that cannot be used: answered with 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {name}: {message}")]
pub struct BadParameter {
    pub name: String,
    pub message: String,
}

impl BadParameter {
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        BadParameter {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// The latency and error rate in force.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Behaviour {
    /// Added before every answer of the catch-all handler.
    pub latency: Duration,
    /// Share of the catch-all handler's answers that are 500s, 0.0..=1.0.
    pub error_rate: f64,
}

impl Behaviour {
    /// Whether a request fails, given `roll`, a random number in `0.0..1.0`: at error rate
    /// 0 never, at 1 always.
    pub fn fails(&self, roll: f64) -> bool {
        roll < self.error_rate
    }

    /// This behaviour with the changes `params` ask for (`error-rate`, `latency`); all or
    /// nothing: one bad value and nothing changes.
    pub fn updated<'a>(
        &self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Behaviour, BadParameter> {
        let mut next = *self;
        for (name, value) in params {
            match name {
                params::ERROR_RATE => {
                    next.error_rate =
                        parse_error_rate(value).map_err(|m| BadParameter::new(name, m))?;
                }
                params::LATENCY => {
                    next.latency = parse_latency(value).map_err(|m| BadParameter::new(name, m))?;
                }
                _ => {
                    return Err(BadParameter::new(
                        name,
                        format!(
                            "unknown; use {} (0.0 to 1.0) or {} (e.g. 100ms)",
                            params::ERROR_RATE,
                            params::LATENCY
                        ),
                    ));
                }
            }
        }
        Ok(next)
    }

    /// `{"latency":"20ms","errorRate":0.1}`: what `/_demo/config` shows.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown {
            latency: String,
            error_rate: f64,
        }
        let shown = Shown {
            latency: format_duration(self.latency),
            error_rate: self.error_rate,
        };
        serde_json::to_string(&shown).expect("a string and a number serialize")
    }
}

/// A share of requests: a number from 0.0 to 1.0.
pub fn parse_error_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{text:?} is not an error rate: use a number from 0.0 (no errors) to 1.0 (every \
             request fails), e.g. 0.1"
        )),
    }
}

/// A duration such as `20ms`, `1.5s` or `0`.
pub fn parse_latency(text: &str) -> Result<Duration, String> {
    smi_crds::validate::parse_duration(text.trim())
}

/// `d` in the largest unit that shows it exactly (`20ms`, `1500ms`, `2s`, `0s`); what
/// [`parse_latency`] reads back.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| nanos.is_multiple_of(*size))
        .expect("every duration is a whole number of nanoseconds");
    format!("{}{unit}", nanos / size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(latency: &str, error_rate: f64) -> Behaviour {
        Behaviour {
            latency: parse_latency(latency).unwrap(),
            error_rate,
        }
    }

    #[test]
    fn error_rate_zero_never_fails_and_one_always_fails() {
        let (never, always) = (mk("0", 0.0), mk("0", 1.0));
        for roll in [0.0, 0.5, 0.999_999] {
            assert!(!never.fails(roll));
            assert!(always.fails(roll));
        }
        assert!(mk("0", 0.1).fails(0.05));
        assert!(!mk("0", 0.1).fails(0.1));
    }

    #[test]
    fn error_rate_must_be_a_share() {
        assert_eq!(parse_error_rate("0.25"), Ok(0.25));
        assert_eq!(parse_error_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "ten", "NaN", ""] {
            let err = parse_error_rate(bad).unwrap_err();
            assert!(err.contains("0.0 (no errors) to 1.0"), "{bad}: {err}");
        }
    }

    #[test]
    fn config_shows_latency_as_it_reads_back() {
        assert_eq!(
            mk("20ms", 0.1).to_json(),
            r#"{"latency":"20ms","errorRate":0.1}"#
        );
        for (given, shown) in [
            ("0", "0s"),
            ("100ms", "100ms"),
            ("1.5s", "1500ms"),
            ("2s", "2s"),
            ("250us", "250us"),
            ("1h30m", "90m"),
        ] {
            let shown_now = format_duration(parse_latency(given).unwrap());
            assert_eq!(shown_now, shown, "{given}");
            assert_eq!(parse_latency(&shown_now), parse_latency(given));
        }
    }

    #[test]
    fn update_changes_only_what_is_named() {
        let before = mk("20ms", 0.1);
        assert_eq!(before.updated([("error-rate", "0.5")]), Ok(mk("20ms", 0.5)));
        assert_eq!(
            before.updated([("latency", "100ms"), ("error-rate", "0")]),
            Ok(mk("100ms", 0.0))
        );
        assert_eq!(before.updated([]), Ok(before));
    }

    #[test]
    fn update_with_a_bad_value_names_the_parameter() {
        let before = mk("20ms", 0.1);
        let err = before
            .updated([("latency", "100ms"), ("error-rate", "2")])
            .unwrap_err();
        assert_eq!(err.name, "error-rate");
        assert_eq!(
            before.updated([("latency", "soon")]).unwrap_err().name,
            "latency"
        );
        let unknown = before.updated([("errors", "1")]).unwrap_err();
        assert_eq!(unknown.name, "errors");
        assert!(unknown.to_string().contains("use error-rate"), "{unknown}");
    }
}
