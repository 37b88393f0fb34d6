//! Sends one richly populated segment to the daemon at `AWS_XRAY_DAEMON_ADDRESS`
//! (default 127.0.0.1:2000), or as OpenTelemetry spans when `OTEL_TRACES_EXPORTER=otlp`
//! (feature `otlp`), and prints the emitter counters.
//!
//! ```text
//! cargo run -p xray-sdk --example emit
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:3000 cargo run -p xray-sdk --example emit
//! # the same recording as OpenTelemetry spans to an OTLP/HTTP endpoint (a collector, the
//! # CloudWatch agent, xray-local): the OpenTelemetry variables choose and configure it
//! OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p xray-sdk --features otlp --example emit
//! # trace 1-... sent as OpenTelemetry spans (OTLP)
//! # spans exported: 155  dropped: 0  rejected: 0  export retries: 0
//! # requests accepted: 1  given up: 0  segments dropped (queue full): 0
//! ```
//!
//! The segment has nested subsegments, annotations of each type, metadata, an http block, an
//! error with its cause chain, and 150 extra subsegments, more than the streaming threshold,
//! so some of them go out as independent subsegment documents.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt;
use std::time::Duration;

use xray_sdk::Record;
use xray_sdk::context::FutureExt;
use xray_sdk::model::Sql;
use xray_sdk::{HttpRequest, Namespace, Recorder};

#[derive(Debug)]
struct LookupError {
    source: std::io::Error,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("inventory lookup failed")
    }
}

impl std::error::Error for LookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = match Recorder::builder()
        .service_name("emit-example")
        .service_version(env!("CARGO_PKG_VERSION"))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    };

    let segment = recorder.segment("emit-example").sampled(true).begin();
    segment.set_http_request(HttpRequest {
        method: Some("POST".into()),
        url: Some("https://shop.example.com/checkout".into()),
        user_agent: Some("emit-example/1.0".into()),
        client_ip: Some("203.0.113.7".into()),
        x_forwarded_for: true,
        traced: false,
    });
    segment.set_user("customer-42");
    segment.annotate("customer_tier", "gold");
    segment.annotate("cart_items", 3);
    segment.annotate("cart_total", 129.95);
    segment.annotate("first_order", false);
    segment.put_metadata(
        "cart",
        serde_json::json!({"items": ["book", "pen", "lamp"]}),
    );
    segment.put_metadata_in("checkout", "payment_provider", "example-pay");

    async {
        xray_sdk::subsegment("validate-cart", async {
            xray_sdk::subsegment("load-prices", async {
                tokio::time::sleep(Duration::from_millis(3)).await;
            })
            .await;
        })
        .await;

        let db =
            xray_sdk::begin_subsegment("orders-db").unwrap_or_else(|_| xray_sdk::Entity::noop());
        db.set_namespace(Namespace::Remote);
        db.set_sql(Sql {
            url: Some("postgresql://db.internal:5432/shop".into()),
            sanitized_query: Some("INSERT INTO orders (customer, total) VALUES ($1, $2)".into()),
            database_type: Some("PostgreSQL".into()),
            preparation: Some("statement".into()),
            ..Sql::default()
        });
        db.end();

        let inventory =
            xray_sdk::begin_subsegment("inventory").unwrap_or_else(|_| xray_sdk::Entity::noop());
        inventory.set_namespace(Namespace::Remote);
        inventory.set_http_response(503, Some(0));
        inventory.record_error(&LookupError {
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"),
        });
        inventory.end();

        for i in 0..150 {
            xray_sdk::with_subsegment(format!("price-rule-{i}"), |s| s.annotate("rule", i));
        }
    }
    .in_context(segment.context())
    .await;

    segment.set_http_response(200, Some(1024));
    let trace_id = segment.trace_id();
    segment.end();

    let report = recorder.shutdown(Duration::from_secs(5)).await;
    let stats = report.stats;
    if stats.spans_exported + stats.spans_dropped > 0 {
        // OTEL_TRACES_EXPORTER=otlp: OpenTelemetry spans, counted per span and per request.
        println!("trace {trace_id} sent as OpenTelemetry spans (OTLP)");
        println!(
            "spans exported: {}  dropped: {}  rejected: {}  export retries: {}",
            stats.spans_exported, stats.spans_dropped, stats.spans_rejected, stats.export_retries
        );
        println!(
            "requests accepted: {}  given up: {}  segments dropped (queue full): {}",
            stats.sent, stats.send_errors, stats.dropped_queue_full
        );
    } else {
        println!(
            "trace {trace_id} sent to {}",
            recorder.daemon_address().udp()
        );
        println!(
            "datagrams sent: {}  queued: {}  dropped (queue full): {}  dropped (too large): {}  truncated: {}  send errors: {}",
            stats.sent,
            stats.queued,
            stats.dropped_queue_full,
            stats.dropped_too_large,
            stats.truncated,
            stats.send_errors
        );
    }
    if !report.is_complete() {
        eprintln!("not sent: {} pending, {} lost", report.pending, report.lost);
        std::process::exit(1);
    }
}
