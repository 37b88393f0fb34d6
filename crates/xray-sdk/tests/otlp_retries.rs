//! Answers and failures of the OTLP endpoint, against a real OTLP/HTTP receiver on 127.0.0.1:
//! 503s then success, 429 and 503 with `Retry-After` (seconds and HTTP date), 400 (logged
//! once with its body and the Transaction Search hint, not retried), other statuses (not
//! retried), `partial_success`, a receiver that never answers, a refused connection, and the
//! batch processor's bounds. The request thread never waits, and every count is exact.

#![allow(clippy::unwrap_used)]

mod otlp_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use otlp_support::{Answer, Receiver};
use xray_sdk::config::TracesExporter;
use xray_sdk::otlp::OtlpSettings;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::{EmitterStats, Namespace, Record, Recorder};

fn recorder(settings: OtlpSettings) -> Recorder {
    Recorder::builder()
        .ignore_env()
        .service_name("shop")
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .panic_stacks(false)
        .exporter(TracesExporter::Otlp)
        .otlp(settings)
        .build()
        .unwrap()
}

/// One request: a segment and three subsegments (four spans). Returns how long the
/// recording calls took on this thread.
fn request(recorder: &Recorder) -> Duration {
    let started = Instant::now();
    let seg = recorder.segment("shop").begin();
    seg.set_http_response(200, None);
    for name in ["a", "b", "c"] {
        let sub = seg.begin_subsegment(name);
        sub.set_namespace(Namespace::Remote);
        sub.set_http_response(200, None);
        sub.end();
    }
    seg.end();
    started.elapsed()
}

fn gap(a: Instant, b: Instant) -> Duration {
    b.saturating_duration_since(a)
}

fn settings(receiver: &Receiver) -> OtlpSettings {
    OtlpSettings::new()
        .endpoint(receiver.url())
        .timeout(Duration::from_secs(10))
}

#[test]
fn unavailable_answers_are_retried_until_one_succeeds() {
    let receiver = Receiver::start(vec![
        Answer::Status(503, vec![], "busy"),
        Answer::Status(502, vec![], "bad gateway"),
        Answer::Status(504, vec![], "timeout"),
    ]);
    let rec = recorder(settings(&receiver));
    request(&rec);
    rec.flush(Duration::from_secs(10)).unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    // Backoff: at least half of 100 ms, then of 200 ms, then of 400 ms.
    assert!(gap(got[0].at, got[1].at) >= Duration::from_millis(50));
    assert!(gap(got[1].at, got[2].at) >= Duration::from_millis(100));
    assert!(gap(got[2].at, got[3].at) >= Duration::from_millis(200));
    // The same request each time.
    assert!(got.iter().all(|r| r.raw == got[0].raw));
    let s = rec.stats();
    assert_eq!(
        (
            s.sent,
            s.export_retries,
            s.spans_exported,
            s.spans_dropped,
            s.send_errors
        ),
        (1, 3, 4, 0, 0),
        "{s:?}"
    );
}

#[test]
fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    // Far enough ahead that, once rounded down to a whole second, it is still at least a
    // second after the retry of the 429 on a loaded machine.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4));
    let receiver = Receiver::start(vec![
        Answer::Status(429, vec![("retry-after", "1".into())], "slow down"),
        Answer::Status(503, vec![("retry-after", date)], "later"),
    ]);
    let rec = recorder(settings(&receiver));
    request(&rec);
    rec.flush(Duration::from_secs(10)).unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(gap(got[0].at, got[1].at) >= Duration::from_millis(950));
    // An HTTP date has whole seconds: at least 3 s after the start are left, of which the
    // first retry took about 1.
    assert!(
        gap(got[1].at, got[2].at) >= Duration::from_millis(500),
        "{:?}",
        gap(got[1].at, got[2].at)
    );
    let s = rec.stats();
    assert_eq!(
        (s.export_retries, s.spans_exported, s.spans_dropped),
        (2, 4, 0)
    );
}

#[test]
fn a_retry_after_past_the_bound_gives_up_at_once() {
    let receiver = Receiver::start(vec![Answer::Status(
        429,
        vec![("retry-after", "30".into())],
        "",
    )]);
    let rec = recorder(settings(&receiver).timeout(Duration::from_secs(2)));
    request(&rec);
    let started = Instant::now();
    rec.flush(Duration::from_secs(10)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.received().len(), 1);
    let s = rec.stats();
    assert_eq!(
        (s.export_retries, s.spans_dropped, s.send_errors),
        (0, 4, 1)
    );
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[test]
fn a_bad_request_is_logged_once_with_its_body_and_not_retried() {
    let body = "{\"message\":\"Transaction Search is not enabled\"}";
    let receiver = Receiver::start(vec![
        Answer::Status(400, vec![], body),
        Answer::Status(400, vec![], body),
    ]);
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("xray_sdk=info"))
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    // Sent inline, so the exporter logs on this thread, under this subscriber.
    let stats = tracing::subscriber::with_default(subscriber, || {
        let rec = Recorder::builder()
            .ignore_env()
            .sampler(AlwaysSample)
            .centralized_sampling(false)
            .plugins(Plugins::none())
            .send_inline(true)
            .exporter(TracesExporter::Otlp)
            .otlp(settings(&receiver))
            .build()
            .unwrap();
        request(&rec);
        request(&rec);
        rec.stats()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receiver.received().len(), 2, "one request each, no retry");
    assert_eq!(
        (
            stats.sent,
            stats.send_errors,
            stats.spans_dropped,
            stats.export_retries
        ),
        (0, 2, 8, 0)
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("HTTP 400")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("ERROR"), "{text}");
    assert!(
        errors[0].contains("Transaction Search is not enabled"),
        "{text}"
    );
    assert!(
        errors[0].contains("answers 400 when CloudWatch Transaction Search"),
        "{text}"
    );
}

#[test]
fn other_statuses_are_not_retried() {
    let receiver = Receiver::start(vec![
        Answer::Status(500, vec![], "oops"),
        Answer::Status(401, vec![], "who are you"),
        Answer::Status(413, vec![], "too big"),
    ]);
    let rec = recorder(settings(&receiver).max_export_batch_size(4));
    for _ in 0..3 {
        request(&rec);
    }
    rec.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.received().len(), 3);
    let s = rec.stats();
    assert_eq!(
        (s.sent, s.send_errors, s.spans_dropped, s.export_retries),
        (0, 3, 12, 0)
    );
}

#[test]
fn a_partial_success_is_counted_and_not_retried() {
    let receiver = Receiver::start(vec![Answer::Partial(1, "span too old")]);
    let rec = recorder(settings(&receiver));
    request(&rec);
    rec.flush(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(receiver.received().len(), 1);
    let s = rec.stats();
    assert_eq!(
        (s.sent, s.spans_exported, s.spans_rejected, s.export_retries),
        (1, 3, 1, 0)
    );
}

#[test]
fn a_receiver_that_never_answers_costs_the_request_thread_nothing() {
    let receiver = Receiver::start(vec![Answer::Hang; 5]);
    let rec = recorder(
        settings(&receiver)
            .timeout(Duration::from_millis(300))
            .max_export_batch_size(4),
    );
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..5 {
        slowest = slowest.max(request(&rec));
    }
    let recording = started.elapsed();
    // The emitter is stuck in its first export (300 ms) while all five are recorded.
    assert!(recording < Duration::from_millis(100), "{recording:?}");
    assert!(slowest < Duration::from_millis(20), "{slowest:?}");
    rec.flush(Duration::from_secs(20)).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(receiver.received().len(), 5);
    let s: EmitterStats = rec.stats();
    assert_eq!(
        (
            s.sent,
            s.send_errors,
            s.spans_dropped,
            s.spans_exported,
            s.pending()
        ),
        (0, 5, 20, 0, 0)
    );
}

#[test]
fn a_refused_connection_is_retried_within_the_bound_then_dropped() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rec = recorder(
        OtlpSettings::new()
            .endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
            .timeout(Duration::from_millis(800)),
    );
    request(&rec);
    let started = Instant::now();
    rec.flush(Duration::from_secs(10)).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let s = rec.stats();
    assert!(s.export_retries >= 2, "{s:?}");
    assert_eq!((s.send_errors, s.spans_dropped, s.sent), (1, 4, 0));
}

#[test]
fn a_flush_deadline_bounds_the_retries() {
    let receiver = Receiver::start(vec![Answer::Status(503, vec![], ""); 1000]);
    let rec = recorder(settings(&receiver).timeout(Duration::from_secs(30)));
    request(&rec);
    let started = Instant::now();
    let _ = rec.flush(Duration::from_millis(400));
    std::thread::sleep(Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2));
    let s = rec.stats();
    assert_eq!((s.spans_dropped, s.send_errors), (4, 1), "{s:?}");
}

#[test]
fn spans_wait_for_the_schedule_delay_or_a_full_batch() {
    let receiver = Receiver::start(vec![]);
    let rec = recorder(
        settings(&receiver)
            .schedule_delay(Duration::from_millis(300))
            .max_export_batch_size(8),
    );
    let started = Instant::now();
    request(&rec);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(receiver.received().len(), 0, "waits for the delay");
    let got = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert!(gap(started, got[0].at) >= Duration::from_millis(290));
    assert_eq!(got[0].spans().len(), 4);
    // Two requests' spans fill a batch of 8: sent at once.
    let started = Instant::now();
    request(&rec);
    request(&rec);
    let got = receiver.wait_for(2, Duration::from_secs(5));
    assert_eq!(got.len(), 2);
    assert!(gap(started, got[1].at) < Duration::from_millis(250));
    assert_eq!(got[1].spans().len(), 8);
}

#[test]
fn the_span_queue_is_bounded() {
    let receiver = Receiver::start(vec![]);
    let rec = recorder(
        settings(&receiver)
            .schedule_delay(Duration::from_secs(60))
            .max_queue_size(6)
            .max_export_batch_size(100),
    );
    request(&rec);
    request(&rec);
    rec.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.spans().len(), 6);
    let s = rec.stats();
    assert_eq!((s.spans_exported, s.spans_dropped, s.sent), (6, 2, 1));
}

#[test]
fn shutdown_sends_what_waits() {
    let receiver = Receiver::start(vec![]);
    let rec = recorder(settings(&receiver).schedule_delay(Duration::from_secs(60)));
    request(&rec);
    let report = rec.shutdown_blocking(Duration::from_secs(10));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(receiver.spans().len(), 4);
    assert_eq!(report.stats.spans_exported, 4);
}
