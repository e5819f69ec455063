//! The original destination of a connection that iptables redirected to a listener
//! (`trellis-proxy init`): `SO_ORIGINAL_DST` for IPv4, `IP6T_SO_ORIGINAL_DST` for IPv6.
//!
//! A connection made to the listener itself (the app using the outbound port explicitly,
//! or anything while no rules are installed) has no original destination: the kernel
//! either has no NAT entry for it or reports the listener's own address, and both are
//! `None` here.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

use nix::libc;
use nix::sys::socket::{getsockopt, sockopt};

/// The address the client connected to before interception; a request extension
/// (beside [`crate::telemetry::ClientAddr`]) on every request of an intercepted
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginalDst(pub SocketAddr);

/// The original destination of the accepted socket `fd` whose local address is `local`,
/// or `None` when the connection was not redirected.
pub fn original_dst(fd: &impl AsFd, local: SocketAddr) -> Option<SocketAddr> {
    let original = match local {
        SocketAddr::V4(_) => getsockopt(fd, sockopt::OriginalDst).ok().map(from_v4),
        SocketAddr::V6(_) => getsockopt(fd, sockopt::Ip6tOriginalDst).ok().map(from_v6),
    }?;
    intercepted(original, local)
}

/// `original` unless it is the listener's own address (no interception happened).
fn intercepted(original: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
    (original != local && original.port() != 0).then_some(original)
}

fn from_v4(sa: libc::sockaddr_in) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    ))
}

fn from_v6(sa: libc::sockaddr_in6) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(sa.sin6_addr.s6_addr),
        u16::from_be(sa.sin6_port),
        u32::from_be(sa.sin6_flowinfo),
        sa.sin6_scope_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fields_are_in_network_byte_order() {
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 8080u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::new(10, 77, 0, 2)).to_be(),
            },
            sin_zero: [0; 8],
        };
        assert_eq!(from_v4(sa), "10.77.0.2:8080".parse().unwrap());
    }

    #[test]
    fn ipv6_fields_are_in_network_byte_order() {
        let ip: Ipv6Addr = "fd00::2".parse().unwrap();
        let sa = libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: 443u16.to_be(),
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            sin6_scope_id: 0,
        };
        assert_eq!(from_v6(sa), "[fd00::2]:443".parse().unwrap());
    }

    #[test]
    fn the_listeners_own_address_is_no_interception() {
        let local: SocketAddr = "127.0.0.1:4140".parse().unwrap();
        assert_eq!(intercepted(local, local), None);
        let original: SocketAddr = "10.77.0.2:8080".parse().unwrap();
        assert_eq!(intercepted(original, local), Some(original));
    }

    #[tokio::test]
    async fn a_direct_connection_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let local = server.local_addr().unwrap();
        assert_eq!(original_dst(&server, local), None);
    }
}
