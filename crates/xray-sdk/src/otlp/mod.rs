//! OpenTelemetry output (feature `otlp`): the recording sent as OTLP spans instead of segment
//! documents, to X-Ray's OTLP endpoint, an OpenTelemetry collector or the CloudWatch agent
//! (port 4318), or, in AWS Lambda, to Lambda's daemon over UDP.
//!
//! Nothing changes on the request path: segments are recorded, sampled and queued exactly as
//! for UDP, and the emitter's thread turns each finished batch into spans
//! ([`mapping`](self) rules: docs/ARCHITECTURE.md), batches them and sends them.
//!
//! It is chosen with `OTEL_TRACES_EXPORTER=otlp` or
//! [`RecorderBuilder::exporter`](crate::RecorderBuilder::exporter), and configured with the
//! OpenTelemetry variables, so deployment files written for other OpenTelemetry SDKs work
//! unchanged; [`OtlpSettings`] gives the same settings in code, and a variable that is set
//! wins (unless the builder ignores the environment).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the URL spans are posted to, as it is | |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/traces` is appended | `http://localhost:4318` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` | `http/protobuf` or `http/json`; `grpc` is refused by `build()` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` | `k=v,k2=v2`, values percent-encoded | |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` | `gzip` or `none` | `none` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` | bound of one export, retries included, in ms (0: `OTEL_BSP_EXPORT_TIMEOUT`) | 10000 |
//! | `OTEL_BSP_SCHEDULE_DELAY` | longest a span waits for its batch, ms | 5000 |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | most spans waiting; more are dropped and counted | 2048 |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | most spans per request | 512 |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | bound of an export when the OTLP timeout is 0, ms | 30000 |
//! | `OTEL_SERVICE_NAME` | resource `service.name` | `OTEL_RESOURCE_ATTRIBUTES`' `service.name`, else the recorder's service name |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `k=v,...` | |
//! | `AWS_XRAY_OTLP_SIGV4_REGION` | sign every request with SigV4 in this region (feature `otlp-sigv4`) | |
//!
//! **SigV4.** Requests to `https://xray.<region>.amazonaws.com` (or `xray-fips.<region>`)
//! are signed with SigV4 for service `xray` in the host's region, with credentials from the
//! AWS SDK's default chain, unless an `Authorization` header (an X-Ray API key) is
//! configured. This needs the `otlp-sigv4` feature: without it such an endpoint is a
//! [`ConfigError`] from `build()`. The account needs CloudWatch Transaction Search turned on;
//! without it the endpoint answers 400, which the exporter logs once with that hint.
//!
//! **AWS Lambda.** With `AWS_LAMBDA_FUNCTION_NAME` set and no endpoint configured, spans go
//! over UDP to Lambda's daemon (`AWS_XRAY_DAEMON_ADDRESS`) in the format AWS's OpenTelemetry
//! distributions use (`T1S` datagrams, a few spans each, each under 64 KiB).
//!
//! **Counting.** [`EmitterStats`](crate::EmitterStats) counts requests (`sent`,
//! `send_errors`), spans (`spans_exported`, `spans_dropped`, `spans_rejected`) and retries
//! (`export_retries`).
//!
//! ```no_run
//! // OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 ./service
//! let recorder = xray_sdk::Recorder::builder()
//!     .service_name("orders")
//!     .build()
//!     .expect("valid configuration");
//! # drop(recorder);
//! ```

mod config;
mod encode;
mod exporter;
mod http;
mod mapping;
mod protobuf;
mod resource;
#[cfg(feature = "otlp-sigv4")]
mod sigv4;
mod udp;

use std::sync::Arc;

pub use config::{DEFAULT_ENDPOINT, OtlpCompression, OtlpProtocol, OtlpSettings};

use crate::config::{ConfigError, Endpoint};
use crate::emitter::Counters;
use crate::plugins::Resources;
use config::Target;
use exporter::{OtlpExporter, Wire};
use resource::ResourceInfo;

/// An OTLP exporter, built, and how it sends, for the recorder's start-up log.
pub(crate) struct Built {
    pub(crate) exporter: OtlpExporter,
    pub(crate) description: String,
}

/// What the process tells the exporter about itself.
pub(crate) struct Process<'a> {
    /// The recorder's service name.
    pub(crate) service_name: &'a str,
    pub(crate) service_version: Option<&'a str>,
    pub(crate) plugins: Arc<Resources>,
    /// The daemon's UDP endpoint (Lambda's daemon takes OTLP datagrams there).
    pub(crate) daemon: &'a Endpoint,
}

/// Builds the OTLP exporter from the settings given in code and the OpenTelemetry
/// variables that are set (`vars`).
pub(crate) fn build(
    settings: &OtlpSettings,
    vars: &[(&'static str, String)],
    process: Process<'_>,
    counters: Arc<Counters>,
) -> Result<Built, ConfigError> {
    let r = config::resolve(settings, vars, process.daemon)?;
    let service_name = r
        .service_name
        .clone()
        .or_else(|| {
            r.resource_attributes
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| process.service_name.to_owned());
    let info = ResourceInfo {
        service_name,
        service_version: process.service_version.map(str::to_owned),
        attributes: r.resource_attributes.clone(),
        lambda_function: r.lambda_function.clone(),
        region: r.region.clone(),
        plugins: process.plugins,
    };
    let description = format!(
        "OTLP {} to {}{}",
        r.protocol.as_str(),
        r.target,
        if r.compression == OtlpCompression::Gzip {
            ", gzip"
        } else {
            ""
        }
    );
    let wire = match &r.target {
        Target::LambdaUdp(endpoint) => {
            Wire::LambdaUdp(udp::LambdaUdp::new(endpoint.clone(), Arc::clone(&counters)))
        }
        Target::Http { url, sigv4_region } => {
            let encoder = encode::Encoder::new(r.protocol, r.compression);
            let mut headers = r.headers.clone();
            headers.push(("Content-Type".to_owned(), encoder.content_type().to_owned()));
            if let Some(enc) = encoder.content_encoding() {
                headers.push(("Content-Encoding".to_owned(), enc.to_owned()));
            }
            let signer = signer(sigv4_region.as_deref());
            Wire::Http {
                transport: http::HttpTransport::new(
                    url.clone(),
                    headers,
                    r.timeout,
                    signer,
                    Arc::clone(&counters),
                ),
                encoder,
            }
        }
    };
    Ok(Built {
        exporter: OtlpExporter::new(info, r.batch, wire, counters),
        description,
    })
}

#[cfg(feature = "otlp-sigv4")]
fn signer(region: Option<&str>) -> Option<Box<dyn http::Sign>> {
    region.map(|r| Box::new(sigv4::Signer::new(r.to_owned())) as Box<dyn http::Sign>)
}

#[cfg(not(feature = "otlp-sigv4"))]
fn signer(region: Option<&str>) -> Option<Box<dyn http::Sign>> {
    // `config::resolve` refuses a region without the feature.
    let _ = region;
    None
}
