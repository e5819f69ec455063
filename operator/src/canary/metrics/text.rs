//! The part of the Prometheus text exposition format the builtin provider reads: sample
//! lines `name{label="value",...} value [timestamp]`, label values with the `\\`, `\"` and
//! `\n` escapes; comments (`# HELP`, `# TYPE`, any `#` line) and blank lines are skipped.
//!
//! Written here rather than taken from a crate: it is about a hundred lines, and the
//! proxies' own output (the `prometheus` crate's text encoder) is all it has to read.

use thiserror::Error;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample, with its number (from 1).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Every sample of `text`, or the first line that is not one.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(i, line)| {
            sample(line.trim()).map_err(|message| ParseError {
                line: i + 1,
                message,
            })
        })
        .collect()
}

fn sample(line: &str) -> Result<Sample, String> {
    let mut rest = line;
    let name = take_name(&mut rest, true).ok_or_else(|| format!("no metric name in {line:?}"))?;
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let label = take_name(&mut rest, false)
                .ok_or_else(|| format!("a label name or '}}' expected in {line:?}"))?;
            rest = rest
                .trim_start()
                .strip_prefix('=')
                .ok_or_else(|| format!("'=' expected after label {label} in {line:?}"))?
                .trim_start();
            let value = take_quoted(&mut rest)
                .ok_or_else(|| format!("a quoted value expected for label {label} in {line:?}"))?;
            labels.push((label.to_owned(), value));
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!(
                    "',' or '}}' expected after label {label} in {line:?}"
                ));
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = number(value).ok_or_else(|| format!("{value:?} is not a number in {line:?}"))?;
    // An optional timestamp (milliseconds), which the builtin provider does not use.
    if let Some(extra) = fields.nth(1) {
        return Err(format!("unexpected {extra:?} after the value in {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without `colons`, a label name.
fn take_name<'a>(rest: &mut &'a str, colons: bool) -> Option<&'a str> {
    let ok = |c: char, first: bool| {
        c == '_'
            || c.is_ascii_alphabetic()
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let end = rest
        .char_indices()
        .find(|&(i, c)| !ok(c, i == 0))
        .map_or(rest.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, after) = rest.split_at(end);
    *rest = after;
    Some(name)
}

/// A `"..."` label value with its escapes undone.
fn take_quoted(rest: &mut &str) -> Option<String> {
    let mut chars = rest.strip_prefix('"')?.char_indices();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                *rest = &rest[i + 2..];
                return Some(value);
            }
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn samples_with_and_without_labels_are_read_and_comments_skipped() {
        let text = "\
# HELP trellis_requests_total HTTP and gRPC requests, by outcome
# TYPE trellis_requests_total counter
trellis_requests_total{direction=\"outbound\",backend=\"shop/api-v3:80\",classification=\"success\"} 41

trellis_request_duration_seconds_bucket{backend=\"shop/api-v3:80\",le=\"+Inf\"} 7
process_start_time_seconds 1700000000.5
up 1 1700000000000
";
        let samples = parse(text).unwrap();
        assert_eq!(
            samples,
            vec![
                Sample {
                    name: "trellis_requests_total".into(),
                    labels: labels(&[
                        ("direction", "outbound"),
                        ("backend", "shop/api-v3:80"),
                        ("classification", "success"),
                    ]),
                    value: 41.0,
                },
                Sample {
                    name: "trellis_request_duration_seconds_bucket".into(),
                    labels: labels(&[("backend", "shop/api-v3:80"), ("le", "+Inf")]),
                    value: 7.0,
                },
                Sample {
                    name: "process_start_time_seconds".into(),
                    labels: vec![],
                    value: 1_700_000_000.5,
                },
                Sample {
                    name: "up".into(),
                    labels: vec![],
                    value: 1.0,
                },
            ]
        );
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert_eq!(samples[1].label("route"), None);
    }

    #[test]
    fn label_values_are_unescaped() {
        let samples =
            parse(r#"m{path="C:\\dir",quote="say \"hi\"",nl="a\nb",comma="x,}y",} 1"#).unwrap();
        assert_eq!(
            samples[0].labels,
            labels(&[
                ("path", "C:\\dir"),
                ("quote", "say \"hi\""),
                ("nl", "a\nb"),
                ("comma", "x,}y"),
            ])
        );
    }

    #[test]
    fn special_values_are_read() {
        let samples = parse("a NaN\nb +Inf\nc -Inf\nd 1e-3\ne{} -2").unwrap();
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        assert!(values[0].is_nan());
        assert_eq!(values[1..], [f64::INFINITY, f64::NEG_INFINITY, 0.001, -2.0]);
    }

    #[test]
    fn a_line_that_is_no_sample_is_refused_with_its_number() {
        for (text, message) in [
            (
                "ok 1\nbroken{a=\"1\" 2",
                "line 2: ',' or '}' expected after label a in \"broken{a=\\\"1\\\" 2\"",
            ),
            (
                "m{a=1} 2",
                "line 1: a quoted value expected for label a in \"m{a=1} 2\"",
            ),
            ("m{a=\"1\"}", "line 1: no value in \"m{a=\\\"1\\\"}\""),
            (
                "m twelve",
                "line 1: \"twelve\" is not a number in \"m twelve\"",
            ),
            (
                "{a=\"1\"} 2",
                "line 1: no metric name in \"{a=\\\"1\\\"} 2\"",
            ),
            (
                "m{a=\"1} 2",
                "line 1: a quoted value expected for label a in \"m{a=\\\"1} 2\"",
            ),
            (
                "m 1 2 3",
                "line 1: unexpected \"3\" after the value in \"m 1 2 3\"",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), message, "{text}");
        }
    }
}
