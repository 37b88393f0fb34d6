//! Load generator for a running xray-local (not run by CI).
//!
//! ```text
//! cargo run --release -p xray-local &                 # the server
//! cargo run --release -p xray-local --example load -- --rate 50000 --secs 10
//! ```
//!
//! Sends `--rate` documents per second for `--secs` seconds over loopback UDP
//! (to `--udp`, default 127.0.0.1:2000), then reads `/api/stats` from `--ui`
//! (default 127.0.0.1:2080) and reports sent vs received and the server's RSS.

// This program's output is its report.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    udp: SocketAddr,
    ui: SocketAddr,
    rate: u64,
    secs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        udp: SocketAddr::from(([127, 0, 0, 1], 2000)),
        ui: SocketAddr::from(([127, 0, 0, 1], 2080)),
        rate: 50_000,
        secs: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--udp" => a.udp = value.parse().map_err(|_| bad())?,
            "--ui" => a.ui = value.parse().map_err(|_| bad())?,
            "--rate" => a.rate = value.parse().map_err(|_| bad())?,
            "--secs" => a.secs = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !a.udp.ip().is_loopback() {
        return Err("--udp must be a loopback address".into());
    }
    a.secs = a.secs.min(600);
    Ok(a)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A realistic ~700-byte segment: HTTP request, one DynamoDB call, one
/// downstream HTTP call, annotations.
fn document(n: u64, t: f64) -> String {
    let trace = format!("1-{:08x}-{:024x}", t as u64, u128::from(n) * 0x9E37_79B9);
    format!(
        concat!(
            "{{\"format\":\"json\",\"version\":1}}\n",
            "{{\"name\":\"load-svc\",\"id\":\"{:016x}\",\"trace_id\":\"{}\",\"start_time\":{},\"end_time\":{},",
            "\"http\":{{\"request\":{{\"method\":\"GET\",\"url\":\"http://localhost/items/{}\",\"user_agent\":\"load\"}},",
            "\"response\":{{\"status\":200,\"content_length\":512}}}},",
            "\"aws\":{{\"xray\":{{\"sdk\":\"X-Ray for Rust\",\"sdk_version\":\"0.1.0\"}}}},",
            "\"annotations\":{{\"item\":{},\"tier\":\"gold\"}},",
            "\"subsegments\":[",
            "{{\"name\":\"DynamoDB\",\"id\":\"{:016x}\",\"namespace\":\"aws\",\"start_time\":{},\"end_time\":{},",
            "\"aws\":{{\"operation\":\"GetItem\",\"table_name\":\"items\",\"region\":\"us-east-1\"}}}},",
            "{{\"name\":\"pricing\",\"id\":\"{:016x}\",\"namespace\":\"remote\",\"start_time\":{},\"end_time\":{},",
            "\"http\":{{\"request\":{{\"method\":\"GET\",\"url\":\"http://pricing/quote\"}},\"response\":{{\"status\":200}}}}}}]}}"
        ),
        n.wrapping_mul(3) | 1,
        trace,
        t,
        t + 0.012,
        n,
        n % 1000,
        n.wrapping_mul(5) | 2,
        t + 0.001,
        t + 0.004,
        n.wrapping_mul(7) | 4,
        t + 0.005,
        t + 0.011,
    )
}

fn stats(ui: SocketAddr) -> Result<serde_json::Value, String> {
    let mut s = TcpStream::connect(ui).map_err(|e| format!("connect {ui}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /api/stats HTTP/1.1\r\nHost: {ui}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("bad HTTP response")?;
    serde_json::from_str(body).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let before = stats(args.ui)?;
    let received_before = before["Intake"]["Received"].as_u64().unwrap_or(0);
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let start = Instant::now();
    let total = args.rate * args.secs;
    let (mut sent, mut send_errors, mut bytes) = (0u64, 0u64, 0u64);
    // Pace in 1 ms slices: by time t, rate * t documents should be out.
    while sent + send_errors < total {
        let due = ((start.elapsed().as_secs_f64() * args.rate as f64) as u64).min(total);
        if sent + send_errors >= due {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let t = now();
        for n in sent + send_errors..due {
            let d = document(n, t);
            match sock.send_to(d.as_bytes(), args.udp) {
                Ok(_) => {
                    sent += 1;
                    bytes += d.len() as u64;
                }
                Err(_) => send_errors += 1,
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the server drain its queue.
    std::thread::sleep(Duration::from_secs(2));
    let after = stats(args.ui)?;
    let i = &after["Intake"];
    let received = i["Received"].as_u64().unwrap_or(0) - received_before;
    println!(
        "sent:            {sent} documents in {elapsed:.2} s ({:.0}/s, {:.1} MB/s), {send_errors} send errors",
        sent as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    println!(
        "received:        {received} ({:.2}% of sent)",
        100.0 * received as f64 / sent.max(1) as f64
    );
    println!("accepted total:  {}", i["Accepted"]);
    println!("rejected:        {}", i["Rejected"]);
    println!(
        "store:           {} traces, {} documents, ~{} MB, evicted {}",
        after["Store"]["Traces"],
        after["Store"]["Documents"],
        after["Store"]["ApproxBytes"].as_u64().unwrap_or(0) / 1_000_000,
        after["Store"]["Counters"]["EvictedTraces"]
    );
    println!(
        "server RSS:      {} MB",
        after["ProcessRssBytes"].as_u64().unwrap_or(0) / 1_000_000
    );
    println!(
        "UDP rcvbuf:      {} KiB",
        after["UdpReceiveBufferBytes"].as_u64().unwrap_or(0) / 1024
    );
    Ok(())
}
