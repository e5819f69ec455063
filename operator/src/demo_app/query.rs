//! Query strings (`?service=api.shop&path=%2Fitems`): split into decoded name/value pairs.

/// The `name=value` pairs of `query`, percent-decoded (`+` is a space), in order. A pair
/// without `=` has an empty value; empty pairs (`a=1&&b=2`) are skipped.
pub fn parse(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// The value of the first pair named `name`.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Percent-decoding; a `%` not followed by two hex digits is kept as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex_at(bytes, i + 1), hex_at(bytes, i + 2)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_at(bytes: &[u8], i: usize) -> Option<u8> {
    let digit = (*bytes.get(i)? as char).to_digit(16)?;
    Some(digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pairs_are_decoded_in_order() {
        assert_eq!(
            parse(Some("service=api.shop:8080&path=%2Fitems%3Fpage%3D2&q=a+b")),
            pairs(&[
                ("service", "api.shop:8080"),
                ("path", "/items?page=2"),
                ("q", "a b")
            ])
        );
    }

    #[test]
    fn odd_query_strings_do_not_fail() {
        assert_eq!(parse(None), pairs(&[]));
        assert_eq!(parse(Some("a&&b=")), pairs(&[("a", ""), ("b", "")]));
        assert_eq!(
            parse(Some("p=100%&q=%zz&r=%4")),
            pairs(&[("p", "100%"), ("q", "%zz"), ("r", "%4")])
        );
    }

    #[test]
    fn get_finds_the_first_value() {
        let q = parse(Some("a=1&a=2"));
        assert_eq!(get(&q, "a"), Some("1"));
        assert_eq!(get(&q, "b"), None);
    }
}
