//! YAML documents with the line of every field.
//!
//! Users fix what they can find: a problem at `spec.backends[1].weight` is reported at the
//! line where that field is written. This reads a YAML stream (YAML 1.2 core schema, as
//! kube-rs' serde-saphyr does) into one JSON value per document plus a map from field path
//! to line, using the event parser that serde-saphyr is built on.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// One document of a YAML stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Line (1-based) where the document's content starts.
    pub line: usize,
    pub value: Value,
    /// Field path (`spec.backends[1].weight`) to the line where it is written.
    positions: BTreeMap<String, usize>,
}

impl Document {
    /// The line of `path`, or of its nearest parent that is written down, or the
    /// document's first line.
    pub fn line_of(&self, path: &str) -> usize {
        let mut path = path;
        loop {
            if let Some(line) = self.positions.get(path) {
                return *line;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.line,
            }
        }
    }

    /// A document for a value that was not read from a file (its fields have no lines).
    pub fn detached(value: Value, line: usize) -> Self {
        Self {
            line,
            value,
            positions: BTreeMap::new(),
        }
    }

    /// The document at `items[index]` of a `kind: List`, with its own field positions.
    pub fn item(&self, index: usize) -> Option<Document> {
        let value = self.value.get("items")?.get(index)?.clone();
        let prefix = format!("items[{index}]");
        let positions = self
            .positions
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&prefix)?;
                let rest = rest
                    .strip_prefix('.')
                    .or_else(|| rest.starts_with('[').then_some(rest))?;
                Some((rest.to_owned(), *v))
            })
            .collect();
        Some(Document {
            line: self.line_of(&prefix),
            value,
            positions,
        })
    }
}

/// A YAML syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// The documents of a stream, up to the first syntax error (if any).
#[derive(Debug, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub error: Option<YamlError>,
}

/// Reads every document of `text`. Empty documents are skipped.
pub fn parse_stream(text: &str) -> Stream {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        positions: BTreeMap::new(),
    };
    let mut stream = Stream::default();
    loop {
        match reader.document() {
            Ok(Some(Some(doc))) => stream.documents.push(doc),
            Ok(Some(None)) => {}
            Ok(None) => return stream,
            Err(e) => {
                stream.error = Some(e);
                return stream;
            }
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    positions: BTreeMap<String, usize>,
}

type Result<T> = std::result::Result<T, YamlError>;

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                message: e.info(),
            }),
            None => Err(YamlError {
                line: 0,
                message: "unexpected end of input".into(),
            }),
        }
    }

    /// `Ok(None)` at the end of the stream; `Ok(Some(None))` for an empty document.
    fn document(&mut self) -> Result<Option<Option<Document>>> {
        loop {
            let (event, _) = self.next()?;
            match event {
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(..) => break,
                _ => {}
            }
        }
        self.anchors.clear();
        self.positions.clear();
        let (event, span) = self.next()?;
        if matches!(event, Event::DocumentEnd) {
            return Ok(Some(None));
        }
        let line = span.start.line();
        let value = self.node(event, span, "")?;
        loop {
            if matches!(self.next()?.0, Event::DocumentEnd) {
                break;
            }
        }
        if value.is_null() {
            return Ok(Some(None));
        }
        let positions = std::mem::take(&mut self.positions);
        Ok(Some(Some(Document {
            line,
            value,
            positions,
        })))
    }

    fn node(&mut self, event: Event<'a>, span: Span, path: &str) -> Result<Value> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let core_tag = tag
                    .as_ref()
                    .filter(|t| t.is_yaml_core_schema())
                    .map(|t| t.suffix().to_owned());
                (scalar(&text, style, core_tag.as_deref()), anchor)
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    line: span.start.line(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                return Ok(value);
            }
            Event::SequenceStart(_, anchor, _) => (self.sequence(path)?, anchor),
            Event::MappingStart(_, anchor, _) => (self.mapping(path)?, anchor),
            _ => {
                // Presentation events (comments, anchor names) come before the node.
                let (event, span) = self.next()?;
                return self.node(event, span, path);
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn sequence(&mut self, path: &str) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok(Value::Array(items));
            }
            if !is_node(&event) {
                continue;
            }
            let item_path = format!("{path}[{}]", items.len());
            self.positions.insert(item_path.clone(), span.start.line());
            items.push(self.node(event, span, &item_path)?);
        }
    }

    fn mapping(&mut self, path: &str) -> Result<Value> {
        let mut map = Map::new();
        let mut merged = Map::new();
        loop {
            let (event, span) = self.next()?;
            let line = span.start.line();
            let (key, plain) = match event {
                Event::MappingEnd => {
                    // Keys written in the mapping win over merged ones, wherever `<<` is.
                    for (k, v) in merged {
                        map.entry(k).or_insert(v);
                    }
                    return Ok(Value::Object(map));
                }
                Event::Scalar(text, style, ..) => (text.into_owned(), style == ScalarStyle::Plain),
                Event::SequenceStart(..) | Event::MappingStart(..) | Event::Alias(_) => {
                    return Err(YamlError {
                        line,
                        message: "only text keys are supported in Kubernetes manifests".into(),
                    });
                }
                _ => continue,
            };
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let (event, span) = self.next()?;
            let value = self.node(event, span, &child)?;
            if plain && key == "<<" {
                merge_into(&mut merged, value);
                continue;
            }
            if map.contains_key(&key) {
                return Err(YamlError {
                    line,
                    message: format!("duplicate key {key:?} (kubectl rejects duplicate keys)"),
                });
            }
            self.positions.insert(child, line);
            map.insert(key, value);
        }
    }
}

fn is_node(event: &Event<'_>) -> bool {
    matches!(
        event,
        Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) | Event::Alias(_)
    )
}

/// YAML merge keys (`<<: *defaults`): the first source that has a key wins.
fn merge_into(map: &mut Map<String, Value>, value: Value) {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        if let Value::Object(entries) = source {
            for (k, v) in entries {
                map.entry(k).or_insert(v);
            }
        }
    }
}

/// YAML 1.2 core schema resolution.
fn scalar(text: &str, style: ScalarStyle, core_tag: Option<&str>) -> Value {
    match core_tag {
        Some("str") => return Value::String(text.to_owned()),
        Some("null") => return Value::Null,
        Some(_) => {}
        None if style != ScalarStyle::Plain => return Value::String(text.to_owned()),
        None => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = integer(text) {
        return n;
    }
    let float_chars = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b));
    if float_chars
        && text.bytes().any(|b| b.is_ascii_digit())
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn integer(text: &str) -> Option<Value> {
    let (radix, digits) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (8, oct)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .ok();
    };
    i64::from_str_radix(digits, radix).ok().map(Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPLIT: &str = "\
# a comment
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: web
spec:
  service: web
  backends:
  - service: web-v1
    weight: 90
  - service: web-v2
    weight: 10
---
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
";

    #[test]
    fn reads_every_non_empty_document_with_its_first_line() {
        let stream = parse_stream(SPLIT);
        assert_eq!(stream.error, None);
        assert_eq!(stream.documents.len(), 2);
        assert_eq!(stream.documents[0].line, 2);
        assert_eq!(stream.documents[1].line, 15);
        assert_eq!(
            stream.documents[1].value["metadata"],
            json!({"name": "web", "labels": {"app": "web"}})
        );
    }

    #[test]
    fn knows_the_line_of_every_field() {
        let doc = &parse_stream(SPLIT).documents[0];
        assert_eq!(doc.line_of("spec.backends[1].weight"), 12);
        assert_eq!(doc.line_of("spec.backends[1]"), 11);
        assert_eq!(doc.line_of("spec.service"), 7);
        // A field that is not written: its nearest written parent.
        assert_eq!(doc.line_of("spec.backends[0].missing"), 9);
        assert_eq!(doc.line_of("nothing"), 2);
    }

    #[test]
    fn resolves_scalars_like_the_yaml_core_schema() {
        let doc =
            &parse_stream("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 500m\ng: 0x1F\nh: !!str 2\n")
                .documents[0];
        assert_eq!(
            doc.value,
            json!({"a": 1, "b": "1", "c": 1.5, "d": true, "e": null, "f": "500m", "g": 31, "h": "2"})
        );
    }

    #[test]
    fn follows_anchors_and_merge_keys() {
        let doc = &parse_stream("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").documents[0];
        assert_eq!(doc.value["other"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn reports_syntax_errors_with_their_line_and_keeps_earlier_documents() {
        let stream = parse_stream("a: 1\n---\nb: [1, 2\nc: 3\n");
        assert_eq!(stream.documents.len(), 1);
        let error = stream.error.unwrap();
        assert!(error.line >= 3, "{error:?}");
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let error = parse_stream("a: 1\nb: 2\na: 3\n").error.unwrap();
        assert_eq!(error.line, 3);
        assert!(
            error.message.contains("duplicate key \"a\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn list_items_keep_their_lines() {
        let doc = &parse_stream("kind: List\nitems:\n- kind: A\n  spec:\n    x: 1\n").documents[0];
        let item = doc.item(0).unwrap();
        assert_eq!(item.value["kind"], "A");
        assert_eq!(item.line_of("spec.x"), 5);
    }
}
