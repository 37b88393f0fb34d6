//! Logging, and the X-Ray instrumentation that is not done by a layer or a middleware.

use xray_sdk::Context;
use xray_sdk::Record;

/// Logs to stderr; `RUST_LOG` filters (default `info`). Colours only on a terminal, so log
/// files (the demo's `target/demo-logs`) hold plain text.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Adds X-Ray instrumentation to a DynamoDB client configuration: every call becomes a
/// `DynamoDB` subsegment (`aws.operation`, `aws.table_name`, `aws.region`, `aws.request_id`).
pub fn instrument_dynamodb(
    builder: aws_sdk_dynamodb::config::Builder,
) -> aws_sdk_dynamodb::config::Builder {
    builder.interceptor(xray_sdk_aws::XRayInterceptor::new())
}

/// Annotates the current segment (or subsegment), if any.
pub fn annotate<'a>(key: &'static str, value: impl Into<xray_sdk::AnnotationValue<'a>>) {
    if let Some(c) = Context::current() {
        c.annotate(key, value);
    }
}

/// The trace ID of the current request, if any.
pub fn current_trace_id() -> Option<String> {
    Context::current().map(|c| c.trace_id().to_string())
}
