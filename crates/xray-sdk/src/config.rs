//! Configuration values and the environment variables the official SDKs read.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AWS_XRAY_DAEMON_ADDRESS` | `host:port` (UDP and TCP), or `udp:host:port tcp:host:port` in either order | `127.0.0.1:2000` |
//! | `AWS_XRAY_TRACING_NAME` | the segment name; overrides the name set in code | the name set in code |
//! | `AWS_XRAY_CONTEXT_MISSING` | `LOG_ERROR`, `RUNTIME_ERROR` or `IGNORE_ERROR` (any case) | `LOG_ERROR` |
//! | `AWS_XRAY_SDK_ENABLED` | `true/false`, `1/0`, `yes/no`, `on/off`, `t/f`, `y/n` | `true` |
//! | `AWS_XRAY_SAMPLING_RULES` | path of a local sampling rules file | built-in rule |
//!
//! As in the official SDKs, a variable that is set wins over the value given in code.

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
}
