//! Faults that must not hurt the service: a daemon that reads slower than we send, shutting
//! down with documents still queued, and hostile bytes in the incoming trace header.
//! (The closed port, the unresolvable daemon, the full queue and the 64 KiB limit are in
//! `limits.rs`.)

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use xray_sdk::Record;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{FlushError, Recorder, TraceHeader};

const WAIT: Duration = Duration::from_secs(10);

/// A daemon that reads one datagram per millisecond: far slower than the emitter sends.
struct SlowDaemon {
    socket_addr: String,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SlowDaemon {
    fn start() -> SlowDaemon {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let socket_addr = socket.local_addr().unwrap().to_string();
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            // Bounded: at most 30 s, and stops when the test ends.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                if socket.recv(&mut buf).is_ok() {
                    r.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        SlowDaemon {
            socket_addr,
            received,
            stop,
        }
    }
}

impl Drop for SlowDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn recorder_to(addr: &str, queue: usize) -> Recorder {
    Recorder::builder()
        .ignore_env()
        .service_name("faults")
        .daemon_address(addr)
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .queue_capacity(queue)
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[test]
fn slow_daemon_keeps_requests_fast_memory_bounded_and_everything_counted() {
    let daemon = SlowDaemon::start();
    let capacity = 256;
    let recorder = recorder_to(&daemon.socket_addr, capacity);
    let produced = 5_000u64;
    let mut end_times = Vec::with_capacity(produced as usize);
    let mut max_pending = 0;
    for i in 0..produced {
        let segment = recorder.segment("slow-daemon").begin();
        for step in ["auth", "load", "render"] {
            let sub = segment.begin_subsegment(step);
            sub.put_metadata("payload", "p".repeat(200));
            sub.end();
        }
        segment.set_http_response(200, Some(512));
        let started = Instant::now();
        segment.end();
        end_times.push(started.elapsed());
        if i % 64 == 0 {
            max_pending = max_pending.max(recorder.stats().pending());
        }
    }
    end_times.sort_unstable();
    let (p50, p99, max) = (
        percentile(&end_times, 0.5),
        percentile(&end_times, 0.99),
        end_times[end_times.len() - 1],
    );
    eprintln!("end(): p50 {p50:?} p99 {p99:?} max {max:?}; max pending {max_pending}");
    // Ending never waits on the daemon: no call comes near a network timeout (200 ms), and
    // nearly all are a lock and a queue push.
    assert!(p99 < Duration::from_millis(5), "p99 {p99:?}");
    assert!(max < Duration::from_millis(100), "max {max:?}");
    // Memory is bounded by the queue: at most `capacity` waiting plus one being sent.
    assert!(max_pending <= capacity as u64 + 1, "pending {max_pending}");

    recorder.flush(WAIT).unwrap();
    let stats = recorder.stats();
    eprintln!(
        "{stats:?}; the slow daemon read {}",
        daemon.received.load(Ordering::Relaxed)
    );
    // Every segment is either queued or counted as dropped; every queued one was processed
    // and is either sent or counted as a send error.
    assert_eq!(
        stats.queued + stats.dropped_queue_full,
        produced,
        "{stats:?}"
    );
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.processed, stats.queued);
    assert_eq!(stats.sent + stats.send_errors, stats.processed, "{stats:?}");
    assert_eq!(stats.dropped_too_large + stats.truncated, 0);
    // UDP gives no back pressure: what the daemon's buffer cannot hold is lost in the kernel,
    // never waited for. The daemon read something, and never more than was sent.
    assert!(daemon.received.load(Ordering::Relaxed) > 0);
    assert!(daemon.received.load(Ordering::Relaxed) <= stats.sent);
}

/// Segments big enough (about 150 subsegments each, streamed in parts) that the emitter
/// cannot drain thousands of them within a few milliseconds.
fn queue_heavy_segments(recorder: &Recorder, n: usize) {
    for _ in 0..n {
        let segment = recorder.segment("shutdown").begin();
        for _ in 0..150 {
            segment.begin_subsegment("step").end();
        }
        segment.end();
    }
}

#[test]
fn flush_at_shutdown_returns_by_its_deadline_with_the_pending_count() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder_to(&capture.daemon_address(), 8192);
    queue_heavy_segments(&recorder, 300);
    let queued = recorder.stats().queued;
    assert!(queued >= 300, "{queued}");

    for deadline in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_millis(20),
    ] {
        let started = Instant::now();
        let result = recorder.flush(deadline);
        let took = started.elapsed();
        eprintln!("flush({deadline:?}) -> {result:?} in {took:?}");
        assert!(
            took < deadline + Duration::from_millis(500),
            "flush({deadline:?}) took {took:?}"
        );
        match result {
            Ok(()) => assert_eq!(recorder.stats().pending(), 0),
            Err(FlushError::Timeout { pending }) => {
                assert!(pending > 0 && pending <= queued, "pending {pending}");
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // With time, everything goes out.
    recorder.flush(WAIT).unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.processed, stats.queued);
}

#[test]
fn flush_never_hangs_when_the_daemon_is_gone_or_unresolvable() {
    for addr in ["127.0.0.1:9", "xray-daemon.invalid:2000"] {
        let recorder = recorder_to(addr, 64);
        queue_heavy_segments(&recorder, 50);
        let started = Instant::now();
        let result = recorder.flush(Duration::from_millis(100));
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{addr}: {result:?} after {:?}",
            started.elapsed()
        );
        assert!(
            matches!(result, Ok(()) | Err(FlushError::Timeout { .. })),
            "{result:?}"
        );
        recorder.flush(WAIT).unwrap();
        let stats = recorder.stats();
        assert_eq!(stats.processed, stats.queued, "{addr}: {stats:?}");
        // Each processed item is one or more datagrams (big segments are streamed in parts),
        // every one of them either sent or counted as an error.
        assert!(
            stats.sent + stats.send_errors >= stats.processed,
            "{addr}: {stats:?}"
        );
    }
}

#[test]
fn dropping_the_recorder_with_work_queued_does_not_block() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder_to(&capture.daemon_address(), 8192);
    queue_heavy_segments(&recorder, 300);
    let started = Instant::now();
    drop(recorder);
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// Incoming values with bytes that must never reach an outgoing header: CR/LF (header
/// injection), NUL and other controls, DEL, spaces, tabs and non-ASCII, in every field.
const HOSTILE: &[&str] = &[
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;x=a\r\nSet-Cookie: s=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793\r\nX-Injected: 1;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8\n;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\n;Lineage=10:1234abcd:3",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:12\u{0}34abcd:3;ok=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Li\tneage=1;k\u{7f}=v;k2=v\u{1b}[31m",
    "Root=1-5759e988-bd862e3fe1be46a994272793;clé=valeur;emoji=🦀;nbsp=a\u{a0}b",
    "Root=1-5759e988-bd862e3fe1be46a994272793;\r\n\r\n=\r\n;Sampled=1",
    "Root=\r\n1-5759e988-bd862e3fe1be46a994272793;Parent=\u{0}53995c3f42cd8ad8",
    "\u{0}\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{b}\u{c}\u{e}\u{1f};Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;%0d%0aX-Injected=1",
];

#[test]
fn hostile_incoming_headers_never_reach_an_outgoing_header() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("header-safety");
    for input in HOSTILE {
        let incoming = TraceHeader::parse(input);
        let segment = recorder.segment("header-safety").header(&incoming).begin();
        let sub = segment.begin_subsegment("downstream");
        for out in [
            incoming.to_string(),
            segment.downstream_header().to_string(),
            sub.downstream_header().to_header_value(),
        ] {
            assert!(
                out.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "{input:?} -> {out:?}"
            );
            // Acceptable to an HTTP stack as a header value, as is.
            assert!(HeaderValue::from_str(&out).is_ok(), "{out:?}");
            assert!(!out.contains("Set-Cookie"), "{out:?}");
        }
        // A valid Root survives junk elsewhere in the header.
        if input.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;") {
            assert_eq!(
                segment.trace_id().to_string(),
                "1-5759e988-bd862e3fe1be46a994272793",
                "{input:?}"
            );
        }
        sub.end();
        segment.end();
    }
    // The documents sent for these requests are valid JSON with the daemon header.
    recorder.flush(WAIT).unwrap();
    let grams = capture.wait_for(HOSTILE.len(), WAIT);
    assert_eq!(grams.len(), HOSTILE.len());
    for g in grams {
        assert!(g.has_daemon_header());
        assert!(g.document().is_object());
    }
}

#[test]
fn oversized_and_repetitive_headers_are_bounded() {
    let mut huge = String::from("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    while huge.len() < 1 << 20 {
        huge.push_str(";Lineage=10:1234abcd:3;k=");
        huge.push_str(&"v".repeat(64));
    }
    let started = Instant::now();
    let h = TraceHeader::parse(&huge);
    // A 1 MiB header costs no more than the first 8 KiB of it.
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(h.root().is_some());
    assert!(h.to_string().len() < 600, "{}", h.to_string().len());
    let recorder = Recorder::disabled();
    let segment = recorder.segment("bounded").header(&h).begin();
    assert!(segment.downstream_header().to_string().len() < 600);
}

#[test]
fn shutdown_sends_what_was_queued_stops_and_counts_what_ends_later() {
    let capture = xray_sdk::testing::UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    for i in 0..50 {
        let segment = recorder.segment(format!("before-{i}")).begin();
        segment.end();
    }
    let late = recorder.segment("late").begin();
    let report = recorder.shutdown_blocking(Duration::from_secs(5));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.sent, 50);
    assert_eq!(capture.drain(Duration::from_millis(300)).len(), 50);
    // Ended after the shutdown: counted, not sent.
    late.end();
    recorder.segment("later").begin().end();
    let stats = recorder.stats();
    assert_eq!(stats.dropped_after_shutdown, 2);
    assert_eq!(stats.sent, 50);
    assert!(capture.drain(Duration::from_millis(300)).is_empty());
    // The emitter thread is gone: a flush cannot be answered.
    assert!(recorder.flush(Duration::from_millis(200)).is_err());
}

#[test]
fn async_shutdown_does_not_block_the_runtime() {
    let capture = xray_sdk::testing::UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        recorder.segment("one").begin().end();
        // Another task keeps running while the shutdown waits.
        let ticker = tokio::spawn(async {
            let mut ticks = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks += 1;
            }
            ticks
        });
        let report = recorder.shutdown(Duration::from_secs(5)).await;
        assert_eq!(ticker.await.unwrap(), 5);
        report
    });
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(capture.drain(Duration::from_millis(300)).len(), 1);
}
