//! OTLP settings: given in code ([`OtlpSettings`]), read from the OpenTelemetry environment
//! variables, and resolved into what the exporter uses. A variable that is set wins over the
//! value given in code, as everywhere in this SDK.

use std::fmt;
use std::time::Duration;

use crate::config::{ConfigError, Endpoint, env};

/// The default endpoint (the OpenTelemetry collector's and the CloudWatch agent's OTLP/HTTP
/// port on the same host).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
const BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
const BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
const BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";

/// The body format of OTLP/HTTP requests (`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`).
///
/// ```
/// use xray_sdk::otlp::OtlpProtocol;
/// assert_eq!(OtlpProtocol::parse("http/json").unwrap(), OtlpProtocol::HttpJson);
/// let err = OtlpProtocol::parse("grpc").unwrap_err();
/// assert_eq!(err.expected(), "http/protobuf or http/json (OTLP over HTTP; gRPC is not supported: X-Ray's OTLP endpoint does not take it)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// Protobuf bodies, `application/x-protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// OTLP/JSON bodies, `application/json`.
    HttpJson,
}

const PROTOCOL_EXPECTED: &str = "http/protobuf or http/json (OTLP over HTTP; gRPC is not supported: X-Ray's OTLP endpoint does not take it)";

impl OtlpProtocol {
    /// Parses `http/protobuf` or `http/json`; anything else, `grpc` included, is an error
    /// that names the supported values.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            _ => Err(ConfigError::new(TRACES_PROTOCOL, s, PROTOCOL_EXPECTED)),
        }
    }

    /// The value as the environment variable spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

/// Compression of OTLP/HTTP request bodies (`OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// Bodies sent as they are (the default).
    #[default]
    None,
    /// Bodies gzipped, with `Content-Encoding: gzip`.
    Gzip,
}

impl OtlpCompression {
    /// Parses `gzip` or `none`.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "gzip" => Ok(OtlpCompression::Gzip),
            "none" | "" => Ok(OtlpCompression::None),
            _ => Err(ConfigError::new(TRACES_COMPRESSION, s, "gzip or none")),
        }
    }
}

/// How spans are batched on the emitter's thread, as OpenTelemetry's batch span processor
/// does (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    /// Longest a span waits for its batch (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s).
    pub(crate) schedule_delay: Duration,
    /// Most spans held waiting; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048).
    pub(crate) max_queue_size: usize,
    /// Most spans per request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512).
    pub(crate) max_export_batch_size: usize,
    /// Bound of one export, retries included, when the request timeout is 0
    /// (`OTEL_BSP_EXPORT_TIMEOUT`, default 30 s).
    pub(crate) export_timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            schedule_delay: Duration::from_millis(5000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

/// OTLP settings given in code, for
/// [`RecorderBuilder::otlp`](crate::RecorderBuilder::otlp). Each has an environment
/// variable, which wins when it is set (unless the builder ignores the environment).
///
/// ```
/// use std::time::Duration;
/// use xray_sdk::Recorder;
/// use xray_sdk::config::TracesExporter;
/// use xray_sdk::otlp::{OtlpCompression, OtlpProtocol, OtlpSettings};
///
/// let recorder = Recorder::builder()
///     .service_name("orders")
///     .exporter(TracesExporter::Otlp)
///     .otlp(
///         OtlpSettings::new()
///             .endpoint("http://collector:4318/v1/traces")
///             .protocol(OtlpProtocol::HttpProtobuf)
///             .compression(OtlpCompression::Gzip)
///             .timeout(Duration::from_secs(5))
///             .resource_attribute("deployment.environment.name", "prod"),
///     )
/// #   .ignore_env()
/// #   .centralized_sampling(false)
///     .build()
///     .expect("valid configuration");
/// # drop(recorder);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct OtlpSettings {
    endpoint: Option<String>,
    protocol: Option<OtlpProtocol>,
    headers: Vec<(String, String)>,
    compression: Option<OtlpCompression>,
    timeout: Option<Duration>,
    schedule_delay: Option<Duration>,
    max_queue_size: Option<usize>,
    max_export_batch_size: Option<usize>,
    resource_attributes: Vec<(String, String)>,
    sigv4_region: Option<String>,
}

impl OtlpSettings {
    /// The defaults.
    pub fn new() -> Self {
        OtlpSettings::default()
    }

    /// The full URL spans are posted to, used as it is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; default [`DEFAULT_ENDPOINT`]). An
    /// `https://xray.<region>.amazonaws.com` URL turns SigV4 signing on.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The body format (default protobuf).
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// A header sent with every request (`OTEL_EXPORTER_OTLP_HEADERS`), such as an
    /// `Authorization` bearer key.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Gzip request bodies or not (default not).
    pub fn compression(mut self, compression: OtlpCompression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Bound of one export, retries included (default 10 s; zero: the batch processor's
    /// export timeout, 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Longest a span waits for its batch to go (default 5 s).
    pub fn schedule_delay(mut self, delay: Duration) -> Self {
        self.schedule_delay = Some(delay);
        self
    }

    /// Most spans held while they wait for their batch (default 2048); more are dropped and
    /// counted.
    pub fn max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = Some(spans);
        self
    }

    /// Most spans per request (default 512).
    pub fn max_export_batch_size(mut self, spans: usize) -> Self {
        self.max_export_batch_size = Some(spans);
        self
    }

    /// A resource attribute (`OTEL_RESOURCE_ATTRIBUTES` adds to these and wins on the same
    /// key).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// Signs every request with SigV4 for service `xray` in this region, whatever the
    /// endpoint (`AWS_XRAY_OTLP_SIGV4_REGION`): for a proxy in front of X-Ray's endpoint.
    /// Needs the `otlp-sigv4` feature.
    pub fn sigv4_region(mut self, region: impl Into<String>) -> Self {
        self.sigv4_region = Some(region.into());
        self
    }
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// OTLP/HTTP to `url`, signed with SigV4 in `sigv4_region` when set.
    Http {
        url: String,
        sigv4_region: Option<String>,
    },
    /// OTLP over UDP to AWS Lambda's daemon (`T1S` datagrams).
    LambdaUdp(Endpoint),
}

/// Everything the exporter needs, settled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    pub(crate) target: Target,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) compression: OtlpCompression,
    pub(crate) headers: Vec<(String, String)>,
    /// Bound of one export, retries included.
    pub(crate) timeout: Duration,
    pub(crate) batch: BatchSettings,
    pub(crate) service_name: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) lambda_function: Option<String>,
    pub(crate) region: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http { url, sigv4_region } => {
                write!(f, "{url}")?;
                if let Some(r) = sigv4_region {
                    write!(f, " (SigV4, region {r})")?;
                }
                Ok(())
            }
            Target::LambdaUdp(ep) => write!(f, "udp://{ep} (AWS Lambda's daemon, T1S)"),
        }
    }
}

/// Settles the OTLP settings: `code`, overridden by the variables in `vars` (the set
/// [`env::OTEL`] variables), with `daemon` as the Lambda UDP target.
pub(crate) fn resolve(
    code: &OtlpSettings,
    vars: &[(&'static str, String)],
    daemon: &Endpoint,
) -> Result<Resolved, ConfigError> {
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    let either = |traces: &'static str, general: &'static str| {
        get(traces)
            .map(|v| (traces, v))
            .or_else(|| get(general).map(|v| (general, v)))
    };

    let endpoint = match (get(TRACES_ENDPOINT), get(ENDPOINT)) {
        (Some(url), _) => Some(checked_url(TRACES_ENDPOINT, url, false)?),
        (None, Some(base)) => Some(checked_url(ENDPOINT, base, true)?),
        (None, None) => match &code.endpoint {
            Some(url) => Some(checked_url("otlp endpoint", url, false)?),
            None => None,
        },
    };
    let protocol = match either(TRACES_PROTOCOL, PROTOCOL) {
        Some((name, v)) => OtlpProtocol::parse(v).map_err(|e| e.for_setting(name))?,
        None => code.protocol.unwrap_or_default(),
    };
    let compression = match either(TRACES_COMPRESSION, COMPRESSION) {
        Some((name, v)) => OtlpCompression::parse(v).map_err(|e| e.for_setting(name))?,
        None => code.compression.unwrap_or_default(),
    };
    let mut headers = code.headers.clone();
    for name in [HEADERS, TRACES_HEADERS] {
        if let Some(v) = get(name) {
            for (k, v) in parse_pairs(name, v)? {
                headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
        }
    }
    for (k, v) in &headers {
        if !valid_header(k, v) {
            return Err(ConfigError::new(
                "otlp header",
                format!("{k}: {v}"),
                "a header name (token characters) and a value without control characters",
            ));
        }
    }
    let batch = BatchSettings {
        schedule_delay: match get(BSP_SCHEDULE_DELAY) {
            Some(v) => Duration::from_millis(number(BSP_SCHEDULE_DELAY, v, 0)?),
            None => code
                .schedule_delay
                .unwrap_or(BatchSettings::default().schedule_delay),
        },
        export_timeout: match get(BSP_EXPORT_TIMEOUT) {
            Some(v) => Duration::from_millis(number(BSP_EXPORT_TIMEOUT, v, 0)?),
            None => BatchSettings::default().export_timeout,
        },
        max_queue_size: match get(BSP_MAX_QUEUE_SIZE) {
            Some(v) => count(BSP_MAX_QUEUE_SIZE, v)?,
            None => positive("max_queue_size", code.max_queue_size, 2048)?,
        },
        max_export_batch_size: match get(BSP_MAX_EXPORT_BATCH_SIZE) {
            Some(v) => count(BSP_MAX_EXPORT_BATCH_SIZE, v)?,
            None => positive("max_export_batch_size", code.max_export_batch_size, 512)?,
        },
    };
    // The specification: a batch is never larger than the queue.
    let batch = BatchSettings {
        max_export_batch_size: batch.max_export_batch_size.min(batch.max_queue_size),
        ..batch
    };
    let timeout = match either(TRACES_TIMEOUT, TIMEOUT) {
        Some((name, v)) => Duration::from_millis(number(name, v, 0)?),
        None => code.timeout.unwrap_or(Duration::from_secs(10)),
    };
    // Zero means no limit of its own: the batch processor's export timeout bounds it, and
    // with that zero too, one hour (an export must end some time).
    let timeout = [timeout, batch.export_timeout]
        .into_iter()
        .find(|t| !t.is_zero())
        .unwrap_or(Duration::from_secs(3600));

    let mut resource_attributes = code.resource_attributes.clone();
    if let Some(v) = get(RESOURCE_ATTRIBUTES) {
        for (k, v) in parse_pairs(RESOURCE_ATTRIBUTES, v)? {
            resource_attributes.retain(|(old, _)| *old != k);
            resource_attributes.push((k, v));
        }
    }
    let service_name = get(SERVICE_NAME)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);

    let lambda_function = get(env::LAMBDA_FUNCTION_NAME)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let explicit_region = match get(env::OTLP_SIGV4_REGION) {
        Some(r) => Some(region(env::OTLP_SIGV4_REGION, r)?),
        None => match &code.sigv4_region {
            Some(r) => Some(region("sigv4_region", r)?),
            None => None,
        },
    };
    let target = match endpoint {
        None if lambda_function.is_some() => Target::LambdaUdp(daemon.clone()),
        endpoint => {
            let url = endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
            let bearer = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            // An X-Ray endpoint signs by itself, unless a key is given as a bearer header.
            let sigv4_region =
                explicit_region.or_else(|| xray_endpoint_region(&url).filter(|_| !bearer));
            Target::Http { url, sigv4_region }
        }
    };
    if let Target::Http {
        url,
        sigv4_region: Some(_),
    } = &target
        && !cfg!(feature = "otlp-sigv4")
    {
        return Err(ConfigError::new(
            if get(env::OTLP_SIGV4_REGION).is_some() {
                env::OTLP_SIGV4_REGION
            } else {
                TRACES_ENDPOINT
            },
            url.clone(),
            "an endpoint that needs no SigV4 signature: build xray-sdk with the `otlp-sigv4` \
             feature to sign requests to X-Ray's OTLP endpoint (or give an X-Ray API key as an \
             `Authorization` header)",
        ));
    }
    Ok(Resolved {
        target,
        protocol,
        compression,
        headers,
        timeout,
        batch,
        service_name,
        resource_attributes,
        lambda_function,
        region: get("AWS_REGION")
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
    })
}

/// Checks an endpoint URL; `base` appends `v1/traces` (the specification's rule for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`). A URL without a path gets `/`.
fn checked_url(setting: &str, url: &str, base: bool) -> Result<String, ConfigError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let bad = || ConfigError::new(setting, url, "an http:// or https:// URL with a host");
    let rest = rest.ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(bad());
    }
    let mut url = url.to_owned();
    if rest.len() == authority.len() {
        url.push('/');
    }
    if base {
        if !url.ends_with('/') {
            url.push('/');
        }
        url.push_str("v1/traces");
    }
    Ok(url)
}

/// The region of X-Ray's OTLP endpoint: `https://xray.<region>.amazonaws.com/...` or
/// `https://xray-fips.<region>.amazonaws.com/...` (also `.amazonaws.com.cn`).
pub(crate) fn xray_endpoint_region(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let labels: Vec<&str> = host.split('.').collect();
    let (service, region) = match labels.as_slice() {
        [s, r, "amazonaws", "com"] | [s, r, "amazonaws", "com", "cn"] => (*s, *r),
        _ => return None,
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (matches!(service, "xray" | "xray-fips") && region_ok).then(|| region.to_owned())
}

fn region(setting: &str, r: &str) -> Result<String, ConfigError> {
    let r = r.trim();
    if !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(r.to_ascii_lowercase())
    } else {
        Err(ConfigError::new(
            setting,
            r,
            "an AWS region such as us-east-1",
        ))
    }
}

fn number(setting: &str, v: &str, min: u64) -> Result<u64, ConfigError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| ConfigError::new(setting, v, "a whole number of milliseconds"))
}

fn count(setting: &str, v: &str) -> Result<usize, ConfigError> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ConfigError::new(setting, v, "a whole number of spans, at least 1"))
}

fn positive(setting: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(setting, "0", "at least 1")),
        Some(n) => Ok(n),
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage form the specification uses
/// for headers and resource attributes); empty entries are skipped.
pub(crate) fn parse_pairs(setting: &str, s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for entry in s.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let bad = || {
            ConfigError::new(
                setting,
                s,
                "comma-separated key=value pairs (values percent-encoded)",
            )
        };
        let (k, v) = entry.split_once('=').ok_or_else(bad)?;
        let k = decode(k.trim()).ok_or_else(bad)?;
        let v = decode(v.trim()).ok_or_else(bad)?;
        if k.is_empty() {
            return Err(bad());
        }
        out.push((k, v));
    }
    Ok(out)
}

fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn valid_header(name: &str, value: &str) -> bool {
    const TOKEN: &[u8] = b"!#$%&'*+-.^_`|~";
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TOKEN.contains(&b))
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests;
