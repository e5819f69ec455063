//! Protocol detection on a connection's first bytes: a meshed peer's TLS ClientHello (the
//! mesh ALPN), the HTTP/2 preface, an HTTP/1 request line, or anything else (opaque TCP,
//! an app's own TLS included). Decides as soon as the bytes allow, so an opaque
//! client that sends a few bytes and waits is not kept waiting.

use crate::tls::{Hello, classify};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Longest HTTP/1 request line accepted before the connection is taken as opaque.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// mTLS from another proxy: terminated, then detected again inside.
    MeshTls,
    Http1,
    Http2,
    Opaque,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::MeshTls => "mtls",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Opaque => "opaque",
        }
    }
}

/// The protocol of a connection starting with `buf`, or `None` when more bytes are needed.
pub fn detect(buf: &[u8]) -> Option<Protocol> {
    match classify(buf) {
        Hello::Mesh => return Some(Protocol::MeshTls),
        Hello::OtherTls => return Some(Protocol::Opaque),
        Hello::NeedMore => return None,
        Hello::NotTls => {}
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (buf.len() >= H2_PREFACE.len()).then_some(Protocol::Http2);
    }
    http1_request_line(buf)
}

/// `METHOD SP target SP HTTP/1.x CRLF`, checked as far as `buf` goes.
fn http1_request_line(buf: &[u8]) -> Option<Protocol> {
    let mut i = 0;
    // Method: an upper-case token.
    while i < buf.len() && buf[i] != b' ' {
        if !(buf[i].is_ascii_uppercase() || buf[i] == b'-' || buf[i] == b'_') || i > 20 {
            return Some(Protocol::Opaque);
        }
        i += 1;
    }
    if i == buf.len() {
        return None;
    }
    if i == 0 {
        return Some(Protocol::Opaque);
    }
    i += 1;
    // Request target: visible characters.
    let target_start = i;
    while i < buf.len() && buf[i] != b' ' {
        if !(0x21..=0x7e).contains(&buf[i]) {
            return Some(Protocol::Opaque);
        }
        i += 1;
    }
    if i == buf.len() {
        return (buf.len() > MAX_REQUEST_LINE).then_some(Protocol::Opaque);
    }
    if i == target_start {
        return Some(Protocol::Opaque);
    }
    i += 1;
    let version = &buf[i..];
    const V: &[u8] = b"HTTP/1.";
    let n = version.len().min(V.len());
    if version[..n] != V[..n] {
        return Some(Protocol::Opaque);
    }
    match version.get(V.len()..) {
        None | Some([]) => None,
        Some([d, rest @ ..]) if d.is_ascii_digit() => match rest {
            [] | [b'\r'] => None,
            [b'\r', b'\n', ..] => Some(Protocol::Http1),
            _ => Some(Protocol::Opaque),
        },
        Some(_) => Some(Protocol::Opaque),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_told_apart_by_its_alpn() {
        // A record header alone cannot tell yet: the ALPN is in the ClientHello.
        assert_eq!(detect(&[0x16, 0x03, 0x01]), None);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00"), None);
        // Malformed handshake bytes are some other TLS: forwarded, never terminated.
        assert_eq!(
            detect(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0, 0, 1, 0]),
            Some(Protocol::Opaque)
        );
    }

    #[test]
    fn http2_prior_knowledge_is_its_preface() {
        assert_eq!(detect(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(detect(&H2_PREFACE[..10]), None, "wait for the rest");
    }

    #[test]
    fn an_http1_request_line_is_http1() {
        assert_eq!(
            detect(b"GET /index.html HTTP/1.1\r\nHost: a\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(detect(b"POST /x HTTP/1.0\r\n"), Some(Protocol::Http1));
        assert_eq!(detect(b"GET /index.ht"), None, "wait for the rest");
        assert_eq!(detect(b"GET / HTTP/1.1\r"), None);
    }

    #[test]
    fn anything_else_is_opaque_as_soon_as_it_shows() {
        assert_eq!(detect(b"hello\n"), Some(Protocol::Opaque));
        assert_eq!(detect(b"GET / FTP/1.1\r\n"), Some(Protocol::Opaque));
        assert_eq!(detect(b"GET /a\nb HTTP/1.1"), Some(Protocol::Opaque));
        assert_eq!(detect(b"SSH-2.0-OpenSSH"), Some(Protocol::Opaque));
    }
}
