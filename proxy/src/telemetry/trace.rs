//! Trace context. The proxy forwards W3C `traceparent`/`tracestate` and B3 headers
//! untouched (every retry and mirrored copy carries them), and reads the trace id for the
//! access log.

use http::HeaderMap;

/// The trace id of a request: from `traceparent`, `b3` or `x-b3-traceid`.
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(tp) = get("traceparent") {
        // version-traceid-parentid-flags
        let mut parts = tp.split('-');
        if let (Some(_), Some(id)) = (parts.next(), parts.next())
            && id.len() == 32
        {
            return Some(id.to_owned());
        }
    }
    if let Some(b3) = get("b3") {
        let id = b3.split('-').next().unwrap_or_default();
        if id.len() == 16 || id.len() == 32 {
            return Some(id.to_owned());
        }
    }
    get("x-b3-traceid").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn the_trace_id_comes_from_w3c_or_b3_headers() {
        let w3c = headers(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert_eq!(
            trace_id(&w3c).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let b3 = headers("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
        assert_eq!(
            trace_id(&b3).as_deref(),
            Some("80f198ee56343ba864fe8b2a57d3eff7")
        );
        let multi = headers("x-b3-traceid", "463ac35c9f6413ad");
        assert_eq!(trace_id(&multi).as_deref(), Some("463ac35c9f6413ad"));
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }
}
