//! Calls a URL inside a segment and reports the status and the trace ID.
//!
//! ```text
//! cargo run -p xray-sdk-reqwest --example client -- http://127.0.0.1:8080/
//! ```
//!
//! The recorder is configured from the environment (`AWS_XRAY_DAEMON_ADDRESS`, ...); run a
//! daemon, or `xray-local`, to see the trace. With `OTEL_PROPAGATORS=tracecontext` (or
//! `OTEL_TRACES_EXPORTER=otlp`) the call carries W3C `traceparent` besides `X-Amzn-Trace-Id`:
//!
//! ```text
//! OTEL_PROPAGATORS=tracecontext,baggage cargo run -p xray-sdk-reqwest --example client -- http://127.0.0.1:8080/
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;
use xray_sdk::Record;

use xray_sdk::Recorder;
use xray_sdk::context::FutureExt;
use xray_sdk_reqwest::XRayMiddleware;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: client URL");
        return ExitCode::from(2);
    };
    let recorder = Recorder::from_env();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build();

    let segment = recorder.segment("xray-sdk-reqwest-example").begin();
    let trace_id = segment.trace_id();
    let outcome = client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .in_context(segment.context())
        .await;
    let code = match &outcome {
        Ok(response) => {
            println!("status: {}", response.status());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            segment.set_fault();
            ExitCode::FAILURE
        }
    };
    println!("trace id: {trace_id}");
    println!("sampled: {}", segment.is_sampled());
    segment.end();
    let report = recorder.shutdown_blocking(Duration::from_secs(2));
    if !report.is_complete() {
        eprintln!("not sent: {} segments", report.pending + report.lost);
    }
    code
}
