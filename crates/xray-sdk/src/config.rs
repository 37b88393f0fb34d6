//! Configuration values and the environment variables the official SDKs read.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AWS_XRAY_DAEMON_ADDRESS` | `host:port` (UDP and TCP), or `udp:host:port tcp:host:port` in either order | `127.0.0.1:2000` |
//! | `AWS_XRAY_TRACING_NAME` | the segment name; overrides the name set in code | the name set in code |
//! | `AWS_XRAY_CONTEXT_MISSING` | `LOG_ERROR`, `RUNTIME_ERROR` or `IGNORE_ERROR` (any case) | `LOG_ERROR` |
//! | `AWS_XRAY_SDK_ENABLED` | `true/false`, `1/0`, `yes/no`, `on/off`, `t/f`, `y/n` | `true` |
//! | `AWS_XRAY_SAMPLING_RULES` | path of a local sampling rules file | built-in rule |
//! | `OTEL_PROPAGATORS` | a comma-separated list; `tracecontext` in it turns on `traceparent` on outgoing HTTP calls, a list without it turns that off | unset |
//! | `OTEL_TRACES_EXPORTER` | `xray` (segment documents over UDP), `otlp` (OpenTelemetry spans; feature `otlp`) or `none` (nothing sent); `otlp` also turns on `traceparent` on outgoing HTTP calls unless `OTEL_PROPAGATORS` is set | `xray` |
//!
//! With `otlp`, the OpenTelemetry variables `OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` apply too (see the `otlp` module).
//!
//! As in the official SDKs, a variable that is set wins over the value given in code. As the
//! OpenTelemetry specification says of its variables, an `OTEL_*` variable set to an empty
//! value counts as unset; their values are matched without regard to case and unknown list
//! entries (`baggage`, `xray`, `b3`, ...) are not errors.

use std::fmt;
use std::path::PathBuf;

/// Default daemon address for both UDP and TCP.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// Environment variable names.
pub mod env {
    /// Daemon address.
    pub const DAEMON_ADDRESS: &str = "AWS_XRAY_DAEMON_ADDRESS";
    /// Segment name override.
    pub const TRACING_NAME: &str = "AWS_XRAY_TRACING_NAME";
    /// Context-missing strategy.
    pub const CONTEXT_MISSING: &str = "AWS_XRAY_CONTEXT_MISSING";
    /// SDK on/off switch.
    pub const SDK_ENABLED: &str = "AWS_XRAY_SDK_ENABLED";
    /// Local sampling rules file.
    pub const SAMPLING_RULES: &str = "AWS_XRAY_SAMPLING_RULES";
    /// OpenTelemetry's propagator list (`tracecontext` turns on `traceparent`).
    pub const PROPAGATORS: &str = "OTEL_PROPAGATORS";
    /// Which exporter sends the recording: `xray`, `otlp` or `none` (`otlp` also turns on
    /// `traceparent` unless [`PROPAGATORS`] is set).
    pub const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// Set in AWS Lambda: `otlp` without an endpoint then sends OTLP over UDP to the daemon.
    pub const LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    /// Turns on SigV4 signing of OTLP requests for any endpoint, in this region.
    pub const OTLP_SIGV4_REGION: &str = "AWS_XRAY_OTLP_SIGV4_REGION";

    /// The OpenTelemetry variables read when the exporter is OTLP (feature `otlp`), with
    /// [`LAMBDA_FUNCTION_NAME`] and [`OTLP_SIGV4_REGION`].
    pub const OTEL: [&str; 19] = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        LAMBDA_FUNCTION_NAME,
        OTLP_SIGV4_REGION,
        "AWS_REGION",
    ];
}

/// What sends the recording (`OTEL_TRACES_EXPORTER`, or
/// [`RecorderBuilder::exporter`](crate::RecorderBuilder::exporter)).
///
/// ```
/// use xray_sdk::config::TracesExporter;
/// assert_eq!(TracesExporter::parse("otlp").unwrap(), TracesExporter::Otlp);
/// assert_eq!(TracesExporter::parse(" XRAY ").unwrap(), TracesExporter::XRay);
/// assert!(TracesExporter::parse("zipkin").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TracesExporter {
    /// Segment documents over UDP to the daemon (the default).
    #[default]
    XRay,
    /// OpenTelemetry spans over OTLP (feature `otlp`; without it the recorder logs a warning
    /// and keeps [`TracesExporter::XRay`]).
    Otlp,
    /// Nothing is sent: segments are still sampled and recorded, and decisions still travel
    /// downstream in trace headers, but every finished batch is dropped at once (counted in
    /// `processed`), with no emitter thread.
    None,
}

impl TracesExporter {
    /// Parses `xray`, `otlp` or `none` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("xray") {
            Ok(TracesExporter::XRay)
        } else if t.eq_ignore_ascii_case("otlp") {
            Ok(TracesExporter::Otlp)
        } else if t.eq_ignore_ascii_case("none") {
            Ok(TracesExporter::None)
        } else {
            Err(ConfigError::new(
                env::TRACES_EXPORTER,
                s,
                "xray, otlp or none (one exporter)",
            ))
        }
    }

    /// The value as `OTEL_TRACES_EXPORTER` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TracesExporter::XRay => "xray",
            TracesExporter::Otlp => "otlp",
            TracesExporter::None => "none",
        }
    }
}

/// A configuration error, with the setting, the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: String,
    value: String,
    expected: String,
}

impl ConfigError {
    /// A new error for `setting` having `value` where `expected` was wanted.
    pub fn new(
        setting: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError {
            setting: setting.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// The setting (an environment variable or builder method) that was wrong.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// The value that was given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What was expected instead.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// The same error, about `setting` (a value parsed for one setting, given through another).
    pub(crate) fn for_setting(mut self, setting: &str) -> Self {
        setting.clone_into(&mut self.setting);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {:?}: expected {}",
            self.setting, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// One endpoint of the daemon: a host (name or IP) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    fn parse(s: &str) -> Option<Endpoint> {
        let (host, port) = s.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return None;
        }
        // An unbracketed IPv6 address is ambiguous ("::1:2000"); require brackets.
        if host.contains(':') && !s.starts_with('[') {
            return None;
        }
        let port: u16 = port.parse().ok()?;
        if port == 0 {
            return None;
        }
        Some(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn to_host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_host_port())
    }
}

/// Where the daemon listens: UDP for documents, TCP for the sampling API.
///
/// ```
/// use xray_sdk::config::DaemonAddress;
/// let a = DaemonAddress::parse("tcp:127.0.0.1:2000 udp:10.0.0.5:3000").unwrap();
/// assert_eq!(a.udp().to_string(), "10.0.0.5:3000");
/// assert_eq!(a.tcp().to_string(), "127.0.0.1:2000");
/// assert_eq!(a.to_string(), "udp:10.0.0.5:3000 tcp:127.0.0.1:2000");
/// assert_eq!(DaemonAddress::default().to_string(), "127.0.0.1:2000");
/// assert!(DaemonAddress::parse("localhost").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonAddress {
    udp: Endpoint,
    tcp: Endpoint,
}

impl Default for DaemonAddress {
    fn default() -> Self {
        let ep = Endpoint {
            host: "127.0.0.1".to_owned(),
            port: 2000,
        };
        DaemonAddress {
            udp: ep.clone(),
            tcp: ep,
        }
    }
}

const DAEMON_EXPECTED: &str =
    "\"host:port\" or \"tcp:host:port udp:host:port\" (a port from 1 to 65535)";

impl DaemonAddress {
    /// Parses `host:port` or `udp:host:port tcp:host:port` (either order, whitespace-separated).
    /// The error names `AWS_XRAY_DAEMON_ADDRESS`, the setting this form comes from.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let err = || ConfigError::new(env::DAEMON_ADDRESS, s, DAEMON_EXPECTED);
        let s_trim = s.trim();
        let parts: Vec<&str> = s_trim.split_whitespace().collect();
        match parts.as_slice() {
            [single] if !single.starts_with("udp:") && !single.starts_with("tcp:") => {
                let ep = Endpoint::parse(single).ok_or_else(err)?;
                Ok(DaemonAddress {
                    udp: ep.clone(),
                    tcp: ep,
                })
            }
            [a, b] => {
                let mut udp = None;
                let mut tcp = None;
                for p in [a, b] {
                    if let Some(rest) = p.strip_prefix("udp:") {
                        if udp.is_some() {
                            return Err(err());
                        }
                        udp = Some(Endpoint::parse(rest).ok_or_else(err)?);
                    } else if let Some(rest) = p.strip_prefix("tcp:") {
                        if tcp.is_some() {
                            return Err(err());
                        }
                        tcp = Some(Endpoint::parse(rest).ok_or_else(err)?);
                    } else {
                        return Err(err());
                    }
                }
                match (udp, tcp) {
                    (Some(udp), Some(tcp)) => Ok(DaemonAddress { udp, tcp }),
                    _ => Err(err()),
                }
            }
            _ => Err(err()),
        }
    }

    /// The UDP endpoint (segment documents).
    pub fn udp(&self) -> &Endpoint {
        &self.udp
    }

    /// The TCP endpoint (sampling API proxy).
    pub fn tcp(&self) -> &Endpoint {
        &self.tcp
    }
}

/// `host:port` when both endpoints are the same, else `udp:host:port tcp:host:port`: the
/// forms [`DaemonAddress::parse`] reads back.
impl fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.udp == self.tcp {
            write!(f, "{}", self.udp)
        } else {
            write!(f, "udp:{} tcp:{}", self.udp, self.tcp)
        }
    }
}

impl std::str::FromStr for DaemonAddress {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        DaemonAddress::parse(s)
    }
}

/// What to do when code asks for the current segment and there is none: the
/// *context-missing policy*.
///
/// It applies where a segment or subsegment is looked for and none is current: the free
/// functions [`begin_subsegment`](crate::begin_subsegment), [`subsegment`](crate::subsegment)
/// and [`with_subsegment`](crate::with_subsegment), and the adapters that record calls under
/// the current context (the reqwest middleware, the tower client layer, the AWS SDK
/// interceptor). Where it comes from, first match wins:
///
/// 1. `AWS_XRAY_CONTEXT_MISSING`, when set: the environment wins over code, as in the
///    official SDKs;
/// 2. the adapter's own `context_missing(...)` setting (the free functions have none);
/// 3. `LOG_ERROR`.
///
/// No recorder takes part, the global one included: outside any context there is no recorder
/// to ask, so the policy is the same whether or not one was installed.
///
/// ```
/// use xray_sdk::ContextMissing;
///
/// let policy: ContextMissing = "ignore_error".parse()?;
/// assert_eq!(policy, ContextMissing::IgnoreError);
/// assert_eq!(ContextMissing::default(), ContextMissing::LogError);
/// assert!("PANIC".parse::<ContextMissing>().is_err());
/// # Ok::<(), xray_sdk::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContextMissing {
    /// Log an error through `tracing` (rate-limited) and carry on without recording (the
    /// default).
    #[default]
    LogError,
    /// Return an error where there is a caller to return it to: [`crate::begin_subsegment`]
    /// returns [`ContextMissingError`](crate::ContextMissingError), and the reqwest middleware
    /// and the tower client layer answer with it without sending the request. Where nothing
    /// can be returned (the AWS SDK interceptor, [`crate::subsegment`]) it is logged as
    /// `LOG_ERROR` is. Rust code does not panic on this.
    RuntimeError,
    /// Carry on silently.
    IgnoreError,
}

impl ContextMissing {
    /// Parses `LOG_ERROR`, `RUNTIME_ERROR` or `IGNORE_ERROR` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("LOG_ERROR") {
            Ok(ContextMissing::LogError)
        } else if t.eq_ignore_ascii_case("RUNTIME_ERROR") {
            Ok(ContextMissing::RuntimeError)
        } else if t.eq_ignore_ascii_case("IGNORE_ERROR") {
            Ok(ContextMissing::IgnoreError)
        } else {
            Err(ConfigError::new(
                env::CONTEXT_MISSING,
                s,
                "LOG_ERROR, RUNTIME_ERROR or IGNORE_ERROR",
            ))
        }
    }
}

impl std::str::FromStr for ContextMissing {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        ContextMissing::parse(s)
    }
}

/// Parses an on/off switch the way the Python SDK reads `AWS_XRAY_SDK_ENABLED`.
pub(crate) fn parse_bool(setting: &str, s: &str) -> Result<bool, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            setting,
            s,
            "true/false, 1/0, yes/no, on/off, t/f or y/n",
        )),
    }
}

/// The values read from the environment (each `None` when the variable is unset).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EnvConfig {
    pub(crate) daemon_address: Option<DaemonAddress>,
    pub(crate) tracing_name: Option<String>,
    pub(crate) context_missing: Option<ContextMissing>,
    pub(crate) enabled: Option<bool>,
    pub(crate) sampling_rules: Option<PathBuf>,
    /// `traceparent` on outgoing HTTP calls, when the `OTEL_*` variables decide it.
    pub(crate) propagate_traceparent: Option<bool>,
    pub(crate) traces_exporter: Option<TracesExporter>,
    /// The variables of [`env::OTEL`] that are set, as they are (parsed when the exporter is
    /// built).
    pub(crate) otel: Vec<(&'static str, String)>,
}

/// Whether a comma-separated `OTEL_*` list names `item` (case-insensitive); `None` when the
/// variable is empty (unset, as the OpenTelemetry specification reads empty values).
fn otel_list_has(value: &str, item: &str) -> Option<bool> {
    if value.trim().is_empty() {
        return None;
    }
    Some(
        value
            .split(',')
            .any(|v| v.trim().eq_ignore_ascii_case(item)),
    )
}

/// `traceparent` on outgoing calls from the OpenTelemetry variables: `OTEL_PROPAGATORS`, when
/// set, decides (on when it lists `tracecontext`: a list is the exact set of propagators
/// wanted); else `OTEL_TRACES_EXPORTER` listing `otlp` turns it on (the propagators of an
/// OpenTelemetry SDK are `tracecontext,baggage` unless told otherwise); else `None`, and the
/// builder's value holds.
pub(crate) fn traceparent_from_env(
    propagators: Option<&str>,
    exporter: Option<&str>,
) -> Option<bool> {
    if let Some(on) = propagators.and_then(|p| otel_list_has(p, "tracecontext")) {
        return Some(on);
    }
    exporter
        .and_then(|e| otel_list_has(e, "otlp"))
        .and_then(|otlp| otlp.then_some(true))
}

impl EnvConfig {
    /// Reads the variables through `get`; returns what parsed and the errors for what did not.
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> (EnvConfig, Vec<ConfigError>) {
        let mut cfg = EnvConfig::default();
        let mut errors = Vec::new();
        if let Some(v) = get(env::DAEMON_ADDRESS) {
            match DaemonAddress::parse(&v) {
                Ok(a) => cfg.daemon_address = Some(a),
                Err(e) => errors.push(e),
            }
        }
        if let Some(v) = get(env::TRACING_NAME) {
            if v.trim().is_empty() {
                errors.push(ConfigError::new(env::TRACING_NAME, v, "a non-empty name"));
            } else {
                cfg.tracing_name = Some(v);
            }
        }
        if let Some(v) = get(env::CONTEXT_MISSING) {
            match ContextMissing::parse(&v) {
                Ok(c) => cfg.context_missing = Some(c),
                Err(e) => errors.push(e),
            }
        }
        if let Some(v) = get(env::SDK_ENABLED) {
            match parse_bool(env::SDK_ENABLED, &v) {
                Ok(b) => cfg.enabled = Some(b),
                Err(e) => errors.push(e),
            }
        }
        if let Some(v) = get(env::SAMPLING_RULES) {
            if v.trim().is_empty() {
                errors.push(ConfigError::new(env::SAMPLING_RULES, v, "a file path"));
            } else {
                cfg.sampling_rules = Some(PathBuf::from(v));
            }
        }
        cfg.propagate_traceparent = traceparent_from_env(
            get(env::PROPAGATORS).as_deref(),
            get(env::TRACES_EXPORTER).as_deref(),
        );
        if let Some(v) = get(env::TRACES_EXPORTER).filter(|v| !v.trim().is_empty()) {
            match TracesExporter::parse(&v) {
                Ok(x) => cfg.traces_exporter = Some(x),
                Err(e) => errors.push(e),
            }
        }
        cfg.otel = env::OTEL
            .iter()
            .filter_map(|&name| get(name).map(|v| (name, v)))
            .collect();
        (cfg, errors)
    }

    pub(crate) fn from_process() -> (EnvConfig, Vec<ConfigError>) {
        EnvConfig::read(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn daemon_address_forms() {
        let a = DaemonAddress::parse("127.0.0.1:2000").unwrap();
        assert_eq!(a, DaemonAddress::default());
        let a = DaemonAddress::parse("xray-daemon:3000").unwrap();
        assert_eq!(a.udp().host, "xray-daemon");
        assert_eq!(a.tcp().port, 3000);
        let a = DaemonAddress::parse("udp:127.0.0.1:2001 tcp:127.0.0.2:2002").unwrap();
        assert_eq!(a.udp().to_string(), "127.0.0.1:2001");
        assert_eq!(a.tcp().to_string(), "127.0.0.2:2002");
        let a = DaemonAddress::parse("  tcp:localhost:1   udp:[::1]:2  ").unwrap();
        assert_eq!(a.udp().to_string(), "[::1]:2");
        assert_eq!(a.tcp().to_string(), "localhost:1");
    }

    #[test]
    fn daemon_address_displays_as_it_parses() {
        for text in [
            "127.0.0.1:2000",
            "xray-daemon:3000",
            "[::1]:2000",
            "udp:127.0.0.1:2001 tcp:127.0.0.2:2002",
            "udp:[::1]:2 tcp:localhost:1",
        ] {
            let a = DaemonAddress::parse(text).unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(DaemonAddress::parse(&a.to_string()).unwrap(), a);
        }
        // Both endpoints the same, written in the two-part form: shown in the short one.
        let a = DaemonAddress::parse("tcp:10.0.0.1:2000 udp:10.0.0.1:2000").unwrap();
        assert_eq!(a.to_string(), "10.0.0.1:2000");
    }

    #[test]
    fn daemon_address_errors() {
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:",
            ":2000",
            "127.0.0.1:70000",
            "127.0.0.1:0",
            "127.0.0.1:abc",
            "udp:127.0.0.1:2000",
            "tcp:127.0.0.1:2000",
            "udp:127.0.0.1:2000 udp:127.0.0.1:2001",
            "udp:127.0.0.1:2000 foo:127.0.0.1:2001",
            "udp:127.0.0.1:2000 tcp:127.0.0.1:2001 x",
            "::1:2000",
        ] {
            let err = DaemonAddress::parse(bad).unwrap_err();
            assert_eq!(err.setting(), "AWS_XRAY_DAEMON_ADDRESS", "{bad}");
            assert!(err.to_string().contains("expected"), "{err}");
        }
    }

    #[test]
    fn context_missing_values() {
        assert_eq!(
            ContextMissing::parse("LOG_ERROR").unwrap(),
            ContextMissing::LogError
        );
        assert_eq!(
            ContextMissing::parse("runtime_error").unwrap(),
            ContextMissing::RuntimeError
        );
        assert_eq!(
            ContextMissing::parse(" IGNORE_ERROR ").unwrap(),
            ContextMissing::IgnoreError
        );
        let e = ContextMissing::parse("PANIC").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid AWS_XRAY_CONTEXT_MISSING: \"PANIC\": expected LOG_ERROR, RUNTIME_ERROR or IGNORE_ERROR"
        );
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "1", "yes", "on", "t", "y"] {
            assert!(parse_bool("X", t).unwrap());
        }
        for f in ["false", "0", "No", "off", "f", "n"] {
            assert!(!parse_bool("X", f).unwrap());
        }
        assert!(parse_bool("X", "maybe").is_err());
    }

    #[test]
    fn env_reading_collects_values_and_errors() {
        let vars: HashMap<&str, &str> = [
            (
                "AWS_XRAY_DAEMON_ADDRESS",
                "udp:10.0.0.1:2000 tcp:10.0.0.1:2001",
            ),
            ("AWS_XRAY_TRACING_NAME", "orders"),
            ("AWS_XRAY_CONTEXT_MISSING", "bogus"),
            ("AWS_XRAY_SDK_ENABLED", "off"),
        ]
        .into_iter()
        .collect();
        let (cfg, errors) = EnvConfig::read(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(cfg.daemon_address.unwrap().tcp().port, 2001);
        assert_eq!(cfg.tracing_name.as_deref(), Some("orders"));
        assert_eq!(cfg.context_missing, None);
        assert_eq!(cfg.enabled, Some(false));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].setting(), "AWS_XRAY_CONTEXT_MISSING");

        let (cfg, errors) = EnvConfig::read(|_| None);
        assert_eq!(cfg, EnvConfig::default());
        assert!(errors.is_empty());
    }

    #[test]
    fn traceparent_from_the_otel_variables() {
        let cases: &[(Option<&str>, Option<&str>, Option<bool>)] = &[
            (None, None, None),
            (Some("tracecontext,baggage"), None, Some(true)),
            (Some(" baggage , TraceContext "), None, Some(true)),
            (Some("baggage,xray,tracecontext"), Some("none"), Some(true)),
            (Some("xray"), None, Some(false)),
            (Some("none"), None, Some(false)),
            // A list given is the exact set wanted, whatever the exporter.
            (Some("xray"), Some("otlp"), Some(false)),
            // Empty counts as unset.
            (Some(""), Some("otlp"), Some(true)),
            (Some("  "), None, None),
            (None, Some("otlp"), Some(true)),
            (None, Some("console, OTLP"), Some(true)),
            (None, Some("xray"), None),
            (None, Some("none"), None),
            (None, Some(""), None),
        ];
        for (propagators, exporter, expected) in cases {
            assert_eq!(
                traceparent_from_env(*propagators, *exporter),
                *expected,
                "{propagators:?} {exporter:?}"
            );
        }
        let (cfg, errors) =
            EnvConfig::read(|k| (k == "OTEL_PROPAGATORS").then(|| "tracecontext".into()));
        assert_eq!(cfg.propagate_traceparent, Some(true));
        assert!(errors.is_empty());
    }
}
