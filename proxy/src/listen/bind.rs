//! Binding a listener on both address families: `127.0.0.1` also binds `::1`, and
//! `0.0.0.0` also `::` (IPv6 only), on the same port, so IPv6 traffic that
//! `trellis-proxy init` redirects (ip6tables) reaches the proxy as IPv4 traffic does. A twin
//! that cannot be bound (a namespace without IPv6) is skipped: IPv4 alone still works.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// The IPv6 address to bind beside `addr`, if any: loopback for loopback, any for any.
pub fn ipv6_twin(addr: SocketAddr) -> Option<SocketAddr> {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            Some(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), v4.port()))
        }
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            Some(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), v4.port()))
        }
        _ => None,
    }
}

/// `addr`, then its IPv6 twin on the port `addr` got (port 0 picks one for both).
pub async fn bind_dual(addr: SocketAddr) -> io::Result<Vec<TcpListener>> {
    let first = TcpListener::bind(addr).await?;
    let port = first.local_addr()?.port();
    let mut listeners = vec![first];
    if let Some(twin) = ipv6_twin(SocketAddr::new(addr.ip(), port))
        && let Ok(listener) = bind_v6_only(twin)
    {
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Binds an IPv6-only socket, so `::` does not collide with `0.0.0.0` on the same port.
fn bind_v6_only(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v6()?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)
        .map_err(io::Error::from)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_and_any_have_ipv6_twins_on_the_same_port() {
        assert_eq!(ipv6_twin(addr("127.0.0.1:4140")), Some(addr("[::1]:4140")));
        assert_eq!(ipv6_twin(addr("0.0.0.0:4143")), Some(addr("[::]:4143")));
        assert_eq!(ipv6_twin(addr("10.0.0.5:4143")), None);
        assert_eq!(ipv6_twin(addr("[::]:4143")), None);
    }

    #[tokio::test]
    async fn a_free_port_is_shared_by_both_families() {
        let listeners = bind_dual(addr("127.0.0.1:0")).await.unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
        if listeners.len() == 2 {
            let twin = listeners[1].local_addr().unwrap();
            assert_eq!(twin.ip(), Ipv6Addr::LOCALHOST);
            tokio::net::TcpStream::connect(twin).await.unwrap();
        }
    }
}
