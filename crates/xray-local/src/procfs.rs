//! Which local process owns a socket, read from Linux's `/proc`.
//!
//! Used to tell which service a sampling client is: the SDKs report their
//! request counts under a random `ClientID`, and segments carry no client
//! ID, but on one machine both come from the same process. Elsewhere than
//! Linux every lookup answers `None`.

use std::net::SocketAddr;

/// The transport of a socket to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (`/proc/net/tcp`, `/proc/net/tcp6`).
    Tcp,
    /// UDP (`/proc/net/udp`, `/proc/net/udp6`).
    Udp,
}

/// Processes whose descriptors are looked at, at most: a bound on the work
/// one lookup does.
const MAX_PROCESSES: usize = 4096;

/// The process id of the local socket bound to `addr` (as the other end
/// sees it: the peer address of a connection, the source of a datagram).
#[cfg(target_os = "linux")]
pub fn socket_owner(proto: Proto, addr: SocketAddr) -> Option<u32> {
    let tables: [&str; 2] = match proto {
        Proto::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let inode = tables.iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        find_inode(&text, addr)
    })?;
    let wanted = format!("socket:[{inode}]");
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten().take(MAX_PROCESSES) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// See the Linux version: always `None` here.
#[cfg(not(target_os = "linux"))]
pub fn socket_owner(_proto: Proto, _addr: SocketAddr) -> Option<u32> {
    None
}

/// The command name of a process (`/proc/PID/comm`).
pub fn process_name(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The inode of the socket whose local address is `addr` in one
/// `/proc/net/{tcp,udp}{,6}` table. A socket bound to the unspecified
/// address (`0.0.0.0`, `::`) matches any address with its port.
pub fn find_inode(table: &str, addr: SocketAddr) -> Option<u64> {
    let mut fallback = None;
    for line in table.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let Some(local) = cols.nth(1) else { continue };
        let Some(inode) = cols.nth(7).and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let Some((ip, port)) = parse_local(local) else {
            continue;
        };
        if port != addr.port() || inode == 0 {
            continue;
        }
        if same_ip(ip, addr.ip()) {
            return Some(inode);
        }
        if ip.is_unspecified() {
            fallback = Some(inode);
        }
    }
    fallback
}

fn same_ip(a: std::net::IpAddr, b: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(v) => v.to_ipv4_mapped(),
    };
    a == b || (v4(a).is_some() && v4(a) == v4(b))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:port` (IPv6), each 32-bit word
/// in the kernel's (little-endian) byte order.
fn parse_local(s: &str) -> Option<(std::net::IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_le_bytes())
    };
    let ip = match ip.len() {
        8 => std::net::IpAddr::from(word(0)?),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            std::net::IpAddr::from(b)
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 777 2 0000000000000000 0
   2: 0100007F:1F91 0100007F:1F90 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn finds_sockets_by_address() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(find_inode(TABLE, at("127.0.0.1:8080")), Some(4242));
        // Bound to 0.0.0.0: any address with the port.
        assert_eq!(find_inode(TABLE, at("127.0.0.1:3000")), Some(777));
        // TIME_WAIT entries have no inode.
        assert_eq!(find_inode(TABLE, at("127.0.0.1:8081")), None);
        assert_eq!(find_inode(TABLE, at("127.0.0.2:8080")), None);
        let v6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 99 1
   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 98 1
";
        assert_eq!(find_inode(v6, at("[::1]:8080")), Some(99));
        assert_eq!(find_inode(v6, at("127.0.0.1:80")), Some(98));
        assert_eq!(find_inode("", at("127.0.0.1:80")), None);
        assert_eq!(find_inode("header\n garbage", at("127.0.0.1:80")), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_this_process() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().expect("address");
        assert_eq!(socket_owner(Proto::Udp, addr), Some(std::process::id()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let conn =
            std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let local = conn.local_addr().expect("address");
        assert_eq!(socket_owner(Proto::Tcp, local), Some(std::process::id()));
        assert!(process_name(std::process::id()).is_some());
    }
}
