//! Telling a meshed peer from other clients on a connection's first bytes: a TLS
//! ClientHello offering [`ALPN`](super::ALPN) is a proxy's mTLS; any other ClientHello is
//! an app's own TLS (forwarded untouched as opaque TCP).

use super::ALPN;

/// What the first bytes of a connection are, as far as TLS goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not a TLS record.
    NotTls,
    /// A TLS ClientHello that is not complete yet.
    NeedMore,
    /// A ClientHello offering the mesh ALPN.
    Mesh,
    /// Any other TLS (or a malformed handshake).
    OtherTls,
}

/// Classifies `buf` without consuming anything: the handshake itself is read again from
/// the start by the TLS acceptor.
pub fn classify(buf: &[u8]) -> Hello {
    // A TLS handshake record: content type 22, then version 3.x.
    match buf {
        [] => return Hello::NeedMore,
        [0x16] | [0x16, 0x03] => return Hello::NeedMore,
        [0x16, 0x03, ..] => {}
        _ => return Hello::NotTls,
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Hello::OtherTls,
        }
    }
    match acceptor.accept() {
        Ok(None) => Hello::NeedMore,
        Ok(Some(accepted)) => {
            let offers_mesh = accepted
                .client_hello()
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ALPN));
            if offers_mesh {
                Hello::Mesh
            } else {
                Hello::OtherTls
            }
        }
        Err(_) => Hello::OtherTls,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The first flight of a rustls client offering `alpn`.
    fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from("example.com").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_hello_offering_the_mesh_alpn_is_a_meshed_peer() {
        assert_eq!(classify(&client_hello(&[b"h2", ALPN])), Hello::Mesh);
    }

    #[test]
    fn an_apps_own_tls_is_not_the_mesh() {
        assert_eq!(
            classify(&client_hello(&[b"h2", b"http/1.1"])),
            Hello::OtherTls
        );
        assert_eq!(classify(&client_hello(&[])), Hello::OtherTls);
    }

    #[test]
    fn a_partial_hello_waits_for_more_bytes() {
        let hello = client_hello(&[ALPN]);
        for cut in [1, 2, 5, hello.len() / 2, hello.len() - 1] {
            assert_eq!(classify(&hello[..cut]), Hello::NeedMore, "cut at {cut}");
        }
    }

    #[test]
    fn plaintext_is_not_tls() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(classify(b"PRI * HTTP/2.0"), Hello::NotTls);
        assert_eq!(classify(&[0x16, 0x01]), Hello::NotTls);
    }
}
