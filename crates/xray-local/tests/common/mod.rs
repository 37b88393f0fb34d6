//! Helpers shared by the integration tests: a server on loopback ports, a UDP
//! sender and a tiny blocking HTTP/1.1 client. Tests run on a multi-threaded
//! runtime, so blocking here does not stall the server's tasks.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use xray_local::{Config, Server};

pub mod fuzz;
pub mod otlp;

pub const HEADER: &str = "{\"format\":\"json\",\"version\":1}";

pub async fn start(config: Config) -> Server {
    Server::start(config)
        .await
        .expect("server starts on loopback")
}

pub async fn start_default() -> Server {
    start(Config::ephemeral()).await
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn unique() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A fresh, valid trace ID for the current time.
pub fn trace_id() -> String {
    trace_id_at(now() as u64)
}

pub fn trace_id_at(epoch: u64) -> String {
    format!("1-{:08x}-{:024x}", epoch, u128::from(unique()))
}

/// A fresh 16-hex-digit entity ID.
pub fn entity_id() -> String {
    format!("{:016x}", unique())
}

pub fn sender() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind UDP sender")
}

pub fn send_raw(server: &Server, datagram: &[u8]) {
    let s = sender();
    s.send_to(datagram, server.udp_addr())
        .expect("send datagram");
}

pub fn send_doc(server: &Server, doc: &Value) {
    let d = format!("{HEADER}\n{doc}");
    send_raw(server, d.as_bytes());
}

/// A complete segment.
pub fn segment(
    trace: &str,
    id: &str,
    name: &str,
    parent: Option<&str>,
    start: f64,
    dur: f64,
) -> Value {
    let mut v = json!({"name": name, "id": id, "trace_id": trace, "start_time": start, "end_time": start + dur});
    if let Some(p) = parent {
        v["parent_id"] = json!(p);
    }
    v
}

/// An independently sent subsegment.
pub fn streamed(trace: &str, id: &str, parent: &str, name: &str, start: f64, dur: f64) -> Value {
    json!({"type": "subsegment", "name": name, "id": id, "trace_id": trace, "parent_id": parent,
           "start_time": start, "end_time": start + dur})
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub fn get(server: &Server, path: &str) -> HttpResponse {
    request(server.ui_addr(), "GET", path, "")
}

pub fn get_json(server: &Server, path: &str) -> Value {
    let r = get(server, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

/// Polls `f` until it returns `Some`, for at most 10 seconds.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the store has accepted `n` documents in total.
pub fn wait_accepted(server: &Server, n: u64) {
    wait_for(&format!("{n} accepted documents"), || {
        let s = get_json(server, "/api/stats");
        (s["Intake"]["Accepted"].as_u64()? >= n).then_some(())
    });
}

pub fn timeline(server: &Server, trace: &str) -> Value {
    get_json(server, &format!("/api/Timeline?id={trace}"))
}

/// An answer with a binary body.
pub struct RawResponse {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How [`post_bytes`] sends the body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// With a `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`, 64 KiB a chunk (no length known ahead).
    Chunked,
    /// A `Content-Length` header only: the body is never sent.
    HeadOnly,
}

/// `POST`s a binary body with the given extra headers. The body is written
/// from another thread while the answer is read, so a server that answers
/// early (a 413) and closes is seen as it is.
pub fn post_bytes(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match framing {
        Framing::Length | Framing::HeadOnly => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()))
        }
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n\r\n"),
    }
    let mut w = s.try_clone().expect("clone socket");
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        match framing {
            Framing::Length => {
                let _ = w.write_all(&body);
            }
            Framing::Chunked => {
                for chunk in body.chunks(64 * 1024) {
                    let frame =
                        [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
                    if w.write_all(&frame).is_err() {
                        return;
                    }
                }
                let _ = w.write_all(b"0\r\n\r\n");
            }
            Framing::HeadOnly => {}
        }
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived (the server closed with
            // unread body bytes): keep what was read.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("reading the answer to POST {path}: {e}"),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk_bytes(&body);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    RawResponse {
        status,
        headers: head,
        body,
    }
}

fn dechunk_bytes(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = s.windows(2).position(|w| w == b"\r\n") {
        let n = std::str::from_utf8(&s[..i])
            .ok()
            .and_then(|l| usize::from_str_radix(l.trim(), 16).ok())
            .unwrap_or(0);
        if n == 0 || s.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&s[i + 2..i + 2 + n]);
        s = &s[(i + 4 + n).min(s.len())..];
    }
    out
}

/// `POST`s a JSON body to the X-Ray API and returns the status and JSON.
pub fn xray_call(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = request(server.ui_addr(), "POST", path, &body.to_string());
    (r.status, r.json())
}
