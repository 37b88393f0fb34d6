//! `tracing` spans as X-Ray subsegments, with the trace ID in the logs.
//!
//! ```sh
//! # Any X-Ray daemon, CloudWatch agent or `cargo run -p xray-local` on 127.0.0.1:2000.
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p xray-sdk-tracing --example instrument
//! ```

use std::time::Duration;

use tracing::{error, info, instrument};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};
use xray_sdk::{FutureExt, Recorder};
use xray_sdk_tracing::{XRayFormat, XRayTracingLayer};

#[instrument(fields(annotation.customer = %customer))]
async fn load_cart(customer: &str) -> Vec<u32> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    info!(items = 3, "cart loaded");
    vec![1200, 450, 99]
}

#[instrument(skip(items), fields(annotation.items = items.len(), total = tracing::field::Empty))]
async fn price(items: &[u32]) -> u32 {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let total = items.iter().sum();
    tracing::Span::current().record("total", total);
    total
}

#[instrument(err)]
async fn charge(total: u32) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(8)).await;
    if total > 1000 {
        return Err(format!("card declined for {total}"));
    }
    Ok(())
}

#[instrument]
async fn checkout(customer: &'static str) {
    let items = load_cart(customer).await;
    let total = price(&items).await;
    // A background task that stays inside the trace.
    let audit = tokio::spawn(
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            info!(total, "audited");
        }
        .instrument_in_span()
        .in_current_context(),
    );
    if let Err(e) = charge(total).await {
        error!(error = %e, "checkout failed");
    }
    let _ = audit.await;
}

trait InSpan: std::future::Future + Sized {
    fn instrument_in_span(self) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, tracing::info_span!("audit"))
    }
}
impl<F: std::future::Future> InSpan for F {}

#[tokio::main]
async fn main() {
    tracing_subscriber::registry()
        .with(XRayTracingLayer::new())
        .with(
            fmt::layer()
                .event_format(XRayFormat::new(fmt::format()))
                .with_filter(EnvFilter::new("info")),
        )
        .init();

    let recorder = Recorder::from_env();
    let segment = recorder.segment("checkout-service").begin();
    checkout("c-42").in_context(segment.context()).await;
    let trace_id = segment.trace_id();
    segment.end();
    let report = recorder.shutdown(Duration::from_secs(2)).await;
    if report.is_complete() {
        info!(%trace_id, "sent (no X-Ray context here, so no prefix)");
    } else {
        error!(
            pending = report.pending,
            lost = report.lost,
            "not everything was sent"
        );
    }
}
