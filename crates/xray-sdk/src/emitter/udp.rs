//! The UDP socket to the daemon: resolved on the emitter thread, connected, and counted.
//!
//! When nothing listens, the kernel reports the ICMP "port unreachable" as ECONNREFUSED on a
//! later send; that send is counted in `send_errors` and the next one goes out as usual, so
//! a dead daemon costs nothing but lost, counted datagrams. The daemon host name is resolved
//! at most once a second while it fails, and again after any other send error.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Counters;
use crate::config::Endpoint;

const RESOLVE_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct UdpTransport {
    endpoint: Endpoint,
    socket: Option<UdpSocket>,
    target: Option<SocketAddr>,
    next_resolve: Instant,
}

impl UdpTransport {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        UdpTransport {
            endpoint,
            socket: None,
            target: None,
            next_resolve: Instant::now(),
        }
    }

    fn resolve(&mut self) -> Option<&UdpSocket> {
        if self.target.is_some() {
            return self.socket.as_ref();
        }
        let now = Instant::now();
        if now < self.next_resolve {
            return None;
        }
        self.next_resolve = now + RESOLVE_RETRY;
        let resolved = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next());
        let Some(addr) = resolved else {
            tracing::warn!(address = %self.endpoint, "cannot resolve the X-Ray daemon address; will retry");
            return None;
        };
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        // A connected socket skips the route lookup on every send.
        match UdpSocket::bind(bind).and_then(|sock| sock.connect(addr).map(|()| sock)) {
            Ok(sock) => {
                let _ = sock.set_write_timeout(Some(Duration::from_millis(200)));
                self.socket = Some(sock);
                self.target = Some(addr);
                self.socket.as_ref()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a UDP socket for X-Ray");
                None
            }
        }
    }

    /// Sends one datagram; counts a failure in `send_errors` and returns whether it went out.
    pub(crate) fn send(&mut self, data: &[u8], counters: &Counters) -> bool {
        let Some(sock) = self.resolve() else {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match sock.send(data) {
            Ok(_) => true,
            Err(e) => {
                let n = counters.send_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, errors = n, "sending to the X-Ray daemon failed");
                }
                // A host name may now point elsewhere: resolve (and connect) again later. A
                // refused port is reported once per ICMP message; the next send goes out.
                if e.kind() != std::io::ErrorKind::ConnectionRefused
                    && self.endpoint.host.parse::<std::net::IpAddr>().is_err()
                {
                    self.target = None;
                }
                false
            }
        }
    }
}
