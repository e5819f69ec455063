//! Reading Prometheus text format (the proxy's `/metrics`) in tests.

/// One sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of a label, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample in `text` (comments and malformed lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let name = &line[..open];
            let (labels, after) = parse_labels(&line[open + 1..])?;
            (name, labels, after)
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"} rest` into the labels and `rest`.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_owned();
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 1 + i + 1);
                break;
            } else {
                value.push(c);
            }
        }
        labels.push((key, value));
        rest = &rest[end?..];
    }
}

/// The sum of every sample of `name` carrying all of `labels` (0 when there is none).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    select(text, name, labels).iter().map(|s| s.value).sum()
}

/// Every sample of `name` carrying all of `labels`.
pub fn select(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    parse(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_are_summed_by_selection() {
        let text = "# HELP x y\n# TYPE t counter\n\
            t{direction=\"outbound\",route=\"a\",status_code=\"200\"} 3\n\
            t{direction=\"outbound\",route=\"b\",status_code=\"503\"} 2\n\
            t{direction=\"inbound\",route=\"a\\\"q\",status_code=\"200\"} 1e0\n\
            u 7\n";
        assert_eq!(sum(text, "t", &[("direction", "outbound")]), 5.0);
        assert_eq!(sum(text, "t", &[("route", "a\"q")]), 1.0);
        assert_eq!(sum(text, "u", &[]), 7.0);
        assert_eq!(sum(text, "v", &[]), 0.0);
    }
}
