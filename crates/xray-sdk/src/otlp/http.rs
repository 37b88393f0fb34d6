//! OTLP/HTTP: one `POST` per batch from the emitter's thread, with TLS (rustls, the Mozilla
//! roots), retries and a time bound.
//!
//! Retried, with exponential backoff and jitter, or after the `Retry-After` the answer gives
//! (seconds or an HTTP date): 429, 502, 503, 504 and failures to connect or to get an answer.
//! Every attempt and every wait stays inside the export's bound (the OTLP timeout, or the
//! flush deadline when that comes first); a request that cannot succeed inside it is given
//! up and its spans counted as dropped. Other answers are not retried: a 400 is logged once
//! with its body (X-Ray's endpoint answers 400 when CloudWatch Transaction Search is off),
//! other statuses at warning level, each failure counted. A `partial_success` in a 2xx answer
//! is logged and its rejected spans counted, and nothing is sent again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use ureq::config::AutoHeaderValue;

use crate::emitter::Counters;

/// Most of an answer's body read (for `partial_success` and error messages).
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Most of an error body quoted in the log.
const MAX_LOGGED_BODY: usize = 1024;
/// The first wait before a retry, doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the transport needs to sign a request (feature `otlp-sigv4`).
pub(crate) trait Sign: Send {
    /// The headers to add to a `POST` of `body` to `url` that carries `headers`, or why the
    /// request cannot be signed before `deadline`.
    fn sign(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Vec<(String, String)>, String>;
}

/// The HTTP side of the exporter.
pub(crate) struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    /// Sent (and signed) with every request: the configured ones, `Content-Type` and
    /// `Content-Encoding`.
    headers: Vec<(String, String)>,
    timeout: Duration,
    signer: Option<Box<dyn Sign>>,
    told_bad_request: bool,
    counters: Arc<Counters>,
}

enum Attempt {
    Done,
    /// Worth another try, after at least this long (a `Retry-After`).
    Retry(Option<Duration>, String),
    Failed,
}

impl HttpTransport {
    pub(crate) fn new(
        url: String,
        headers: Vec<(String, String)>,
        timeout: Duration,
        signer: Option<Box<dyn Sign>>,
        counters: Arc<Counters>,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(AutoHeaderValue::None)
            .max_idle_age(Duration::from_secs(25))
            .build();
        HttpTransport {
            agent: ureq::Agent::new_with_config(config),
            url,
            headers,
            timeout,
            signer,
            told_bad_request: false,
            counters,
        }
    }

    /// Posts `body` (which holds `spans` spans), retrying inside the time bound; counts the
    /// outcome.
    pub(crate) fn send(&mut self, body: &[u8], spans: u64, deadline: Option<Instant>) {
        let started = Instant::now();
        let bound = match (started.checked_add(self.timeout), deadline) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(started),
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.attempt(body, spans, bound) {
                Attempt::Done => return,
                Attempt::Failed => break,
                Attempt::Retry(after, why) => {
                    let wait = after.unwrap_or_else(|| jitter(backoff));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if Instant::now() + wait >= bound {
                        warn_counted(
                            &self.counters,
                            &format!("OTLP export given up, no time left to retry: {why}"),
                        );
                        break;
                    }
                    tracing::debug!(reason = %why, wait_ms = wait.as_millis() as u64, "OTLP export: retrying");
                    std::thread::sleep(wait);
                    self.counters.export_retries.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.give_up(spans);
    }

    fn give_up(&self, spans: u64) {
        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        self.counters
            .spans_dropped
            .fetch_add(spans, Ordering::Relaxed);
    }

    fn attempt(&mut self, body: &[u8], spans: u64, bound: Instant) -> Attempt {
        let remaining = bound.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Attempt::Failed;
        }
        let signed = match &mut self.signer {
            Some(signer) => match signer.sign(&self.url, &self.headers, body, bound) {
                Ok(h) => h,
                Err(e) => {
                    warn_counted(&self.counters, &format!("OTLP request not signed: {e}"));
                    return Attempt::Failed;
                }
            },
            None => Vec::new(),
        };
        let mut request = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(remaining))
            .build()
            .header("User-Agent", USER_AGENT);
        for (k, v) in self.headers.iter().chain(&signed) {
            request = request.header(k.as_str(), v.as_str());
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) if retryable_error(&e) => {
                return Attempt::Retry(None, format!("{}: {e}", self.url));
            }
            Err(e) => {
                warn_counted(
                    &self.counters,
                    &format!("OTLP request to {} failed: {e}", self.url),
                );
                return Attempt::Failed;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        let answer = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => {
                let rejected = partial_success(&answer, json);
                let accepted = spans.saturating_sub(rejected);
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .spans_exported
                    .fetch_add(accepted, Ordering::Relaxed);
                self.counters
                    .spans_rejected
                    .fetch_add(rejected.min(spans), Ordering::Relaxed);
                Attempt::Done
            }
            429 | 502 | 503 | 504 => {
                Attempt::Retry(retry_after, format!("{} answered HTTP {status}", self.url))
            }
            400 => {
                let body = quoted(&answer);
                if self.told_bad_request {
                    tracing::debug!(status, body = %body, "OTLP endpoint rejected spans (HTTP 400)");
                } else {
                    self.told_bad_request = true;
                    tracing::error!(
                        status,
                        endpoint = %self.url,
                        body = %body,
                        "OTLP endpoint rejected spans as bad data (HTTP 400), not retried: \
                         X-Ray's OTLP endpoint answers 400 when CloudWatch Transaction Search \
                         is not enabled in the account and region (later 400s are logged at \
                         debug level)"
                    );
                }
                Attempt::Failed
            }
            _ => {
                warn_counted(
                    &self.counters,
                    &format!(
                        "OTLP endpoint {} answered HTTP {status}, not retried: {}",
                        self.url,
                        quoted(&answer)
                    ),
                );
                Attempt::Failed
            }
        }
    }
}

/// Sent with every request: the exporter, its language and version.
const USER_AGENT: &str = concat!("xray-sdk-rust-otlp/", env!("CARGO_PKG_VERSION"));

/// A random wait between half and all of `base`.
fn jitter(base: Duration) -> Duration {
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Errors that leave the request unanswered: no connection, a reset, a timeout.
fn retryable_error(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_)
            | ureq::Error::Protocol(_)
    )
}

/// Spans rejected by a `partial_success` answer (logged); 0 for a full success or an answer
/// that cannot be read (the receiver accepted the request).
fn partial_success(answer: &[u8], json: bool) -> u64 {
    if answer.is_empty() {
        return 0;
    }
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceResponse>(answer).ok()
    } else {
        ExportTraceServiceResponse::decode(answer).ok()
    };
    let Some(partial) = decoded.and_then(|r| r.partial_success) else {
        return 0;
    };
    let rejected = u64::try_from(partial.rejected_spans).unwrap_or(0);
    if rejected > 0 || !partial.error_message.is_empty() {
        tracing::warn!(
            rejected_spans = rejected,
            message = %partial.error_message,
            "OTLP endpoint accepted the request in part (partial_success); not retried"
        );
    }
    rejected
}

fn quoted(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(MAX_LOGGED_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Logs a failure at the 1st, 2nd, 4th, ... one.
fn warn_counted(counters: &Counters, message: &str) {
    let n = counters.send_errors.load(Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(failures = n, "{message}");
    } else {
        tracing::debug!("{message}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        let soon = SystemTime::now() + Duration::from_secs(30);
        let d = retry_after(&httpdate::fmt_http_date(soon)).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("-1"), None);
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(200));
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[test]
    fn partial_success_counts_rejected_spans() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(partial_success(&answer.encode_to_vec(), false), 2);
        let json = serde_json::to_vec(&answer).unwrap();
        assert_eq!(partial_success(&json, true), 2);
        assert_eq!(partial_success(b"", false), 0);
        assert_eq!(partial_success(b"\xff\xff", false), 0);
    }
}
