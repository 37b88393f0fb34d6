//! Settings of the three services, read from the environment with working local defaults.
//!
//! | variable | used by | default |
//! | --- | --- | --- |
//! | `PORT` | all | 8080 (bff), 8081 (backend1), 8082 (backend2) |
//! | `BIND_ADDRESS` | all | `127.0.0.1` (containers set `0.0.0.0`) |
//! | `AWS_XRAY_DAEMON_ADDRESS` | all | `127.0.0.1:2000` (xray-local or the daemon sidecar) |
//! | `AWS_XRAY_SAMPLING_RULES` | all | none: the SDK's built-in rule until centralized rules arrive |
//! | `AWS_XRAY_TRACING_NAME` | all | `xray-demo-bff`, `xray-demo-backend1`, `xray-demo-backend2` |
//! | `BACKEND1_URL`, `BACKEND2_URL` | bff | `http://127.0.0.1:8081`, `http://127.0.0.1:8082` (plain `http://` only: the BFF's HTTP client has no TLS) |
//! | `TABLE_NAME` | backends | `xray-demo` |
//! | `AWS_REGION` | backends | `us-east-1` |
//! | `RUST_LOG` | all | `info` (the log filter) |
//! | `DYNAMODB_ENDPOINT` | backends | `http://127.0.0.1:8000` (moto or DynamoDB Local); `aws` for the real regional endpoint, which is also the default on ECS and Lambda (`AWS_EXECUTION_ENV` set) |
//!
//! With a local endpoint the backends use static test credentials (`AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` if set, else `testing`), so nothing ever asks an instance metadata
//! service for credentials. With `aws` they use the SDK's default credential chain (the ECS
//! task role on Fargate).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Which of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The backend for frontend: serves the page and `/api/now`.
    Bff,
    /// Backend #1: the current date.
    Backend1,
    /// Backend #2: the current time.
    Backend2,
}

impl Role {
    /// The binary name, the `SubAppId` written to the table and the Cloud Map name.
    pub fn id(self) -> &'static str {
        match self {
            Role::Bff => "bff",
            Role::Backend1 => "backend1",
            Role::Backend2 => "backend2",
        }
    }

    /// The X-Ray service (segment) name; `AWS_XRAY_TRACING_NAME` overrides it.
    pub fn service_name(self) -> &'static str {
        match self {
            Role::Bff => "xray-demo-bff",
            Role::Backend1 => "xray-demo-backend1",
            Role::Backend2 => "xray-demo-backend2",
        }
    }

    /// The port used when `PORT` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            Role::Bff => 8080,
            Role::Backend1 => 8081,
            Role::Backend2 => 8082,
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct Common {
    /// Which service.
    pub role: Role,
    /// Where to listen.
    pub bind: SocketAddr,
    /// The X-Ray daemon: `host:port` or `udp:host:port tcp:host:port`.
    pub daemon_address: String,
    /// A local sampling rules file (the fallback until centralized rules arrive).
    pub sampling_rules: Option<PathBuf>,
    /// Whether the X-Ray SDK may also read its `AWS_XRAY_*` variables (off in tests that run
    /// several services in one process).
    pub read_xray_env: bool,
}

impl Common {
    /// Local defaults, no environment.
    pub fn local(role: Role) -> Self {
        Common {
            role,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), role.default_port()),
            daemon_address: xray_sdk::config::DEFAULT_DAEMON_ADDRESS.to_string(),
            sampling_rules: None,
            read_xray_env: false,
        }
    }

    /// From an environment lookup.
    pub fn from_lookup(
        role: Role,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut c = Common::local(role);
        c.read_xray_env = true;
        let ip = match get("BIND_ADDRESS") {
            Some(v) => v
                .parse::<IpAddr>()
                .map_err(|_| ConfigError(format!("BIND_ADDRESS: `{v}` is not an IP address")))?,
            None => c.bind.ip(),
        };
        let port = match get("PORT") {
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| ConfigError(format!("PORT: `{v}` is not a port number")))?,
            None => role.default_port(),
        };
        c.bind = SocketAddr::new(ip, port);
        if let Some(v) = get(xray_sdk::config::env::DAEMON_ADDRESS) {
            c.daemon_address = v;
        }
        c.sampling_rules = get(xray_sdk::config::env::SAMPLING_RULES).map(PathBuf::from);
        Ok(c)
    }

    /// The recorder of this service.
    pub fn recorder(&self) -> Result<xray_sdk::Recorder, xray_sdk::ConfigError> {
        let mut b = xray_sdk::Recorder::builder()
            .service_name(self.role.service_name())
            .daemon_address(self.daemon_address.clone())
            .service_version(env!("CARGO_PKG_VERSION"));
        if let Some(rules) = &self.sampling_rules {
            b = b.sampling_rules_file(rules.clone());
        }
        if !self.read_xray_env {
            b = b.ignore_env();
        }
        b.build()
    }
}

/// Settings of the BFF.
#[derive(Debug, Clone)]
pub struct BffConfig {
    /// Port, daemon, sampling.
    pub common: Common,
    /// Base URL of backend #1 (the date).
    pub backend1_url: String,
    /// Base URL of backend #2 (the time).
    pub backend2_url: String,
}

impl BffConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&process_env)
    }

    /// From an environment lookup.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = |key: &str, role: Role| -> Result<String, ConfigError> {
            let v = get(key).unwrap_or_else(|| format!("http://127.0.0.1:{}", role.default_port()));
            // The HTTP client is built without TLS (the backends are reached inside the VPC):
            // an https:// URL would fail on every request, so it is refused at start.
            if v.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            {
                return Err(ConfigError(format!(
                    "{key}: `{v}`: https:// is not supported (the BFF's HTTP client has no TLS); \
                     use an http:// URL"
                )));
            }
            if !v
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            {
                return Err(ConfigError(format!("{key}: `{v}` is not an http:// URL")));
            }
            Ok(v.trim_end_matches('/').to_string())
        };
        Ok(BffConfig {
            common: Common::from_lookup(Role::Bff, get)?,
            backend1_url: url("BACKEND1_URL", Role::Backend1)?,
            backend2_url: url("BACKEND2_URL", Role::Backend2)?,
        })
    }
}

/// Where the backends find DynamoDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamoEndpoint {
    /// A local stand-in (moto, DynamoDB Local) at this URL, with static credentials.
    Local(String),
    /// The regional AWS endpoint with the default credential chain.
    Aws,
}

/// Settings of a backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Port, daemon, sampling.
    pub common: Common,
    /// The DynamoDB table.
    pub table_name: String,
    /// The AWS region.
    pub region: String,
    /// The DynamoDB endpoint.
    pub endpoint: DynamoEndpoint,
}

/// The default local DynamoDB endpoint (moto's server or DynamoDB Local).
pub const DEFAULT_DYNAMODB_ENDPOINT: &str = "http://127.0.0.1:8000";
/// The default table name.
pub const DEFAULT_TABLE_NAME: &str = "xray-demo";
/// The default region.
pub const DEFAULT_REGION: &str = "us-east-1";

impl BackendConfig {
    /// Local defaults for `role`, talking to DynamoDB at `endpoint`.
    pub fn local(role: Role, endpoint: &str) -> Self {
        BackendConfig {
            common: Common::local(role),
            table_name: DEFAULT_TABLE_NAME.to_string(),
            region: DEFAULT_REGION.to_string(),
            endpoint: DynamoEndpoint::Local(endpoint.to_string()),
        }
    }

    /// From the process environment.
    pub fn from_env(role: Role) -> Result<Self, ConfigError> {
        Self::from_lookup(role, &process_env)
    }

    /// From an environment lookup.
    pub fn from_lookup(
        role: Role,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let endpoint = match get("DYNAMODB_ENDPOINT") {
            Some(v) if v.eq_ignore_ascii_case("aws") => DynamoEndpoint::Aws,
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                DynamoEndpoint::Local(v)
            }
            Some(v) => {
                return Err(ConfigError(format!(
                    "DYNAMODB_ENDPOINT: `{v}` is neither a URL nor `aws`"
                )));
            }
            None if get("AWS_EXECUTION_ENV").is_some() => DynamoEndpoint::Aws,
            None => DynamoEndpoint::Local(DEFAULT_DYNAMODB_ENDPOINT.to_string()),
        };
        Ok(BackendConfig {
            common: Common::from_lookup(role, get)?,
            table_name: get("TABLE_NAME").unwrap_or_else(|| DEFAULT_TABLE_NAME.to_string()),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            endpoint,
        })
    }
}

/// A variable of the process environment; empty counts as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn local_defaults() {
        let c = BackendConfig::from_lookup(Role::Backend2, &lookup(&[])).unwrap();
        assert_eq!(c.common.bind.to_string(), "127.0.0.1:8082");
        assert_eq!(c.common.daemon_address, "127.0.0.1:2000");
        assert_eq!(c.table_name, "xray-demo");
        assert_eq!(
            c.endpoint,
            DynamoEndpoint::Local("http://127.0.0.1:8000".into())
        );
        let b = BffConfig::from_lookup(&lookup(&[])).unwrap();
        assert_eq!(b.backend1_url, "http://127.0.0.1:8081");
        assert_eq!(b.common.bind.port(), 8080);
    }

    #[test]
    fn ecs_settings() {
        let env = lookup(&[
            ("PORT", "9000"),
            ("BIND_ADDRESS", "0.0.0.0"),
            ("AWS_EXECUTION_ENV", "AWS_ECS_FARGATE"),
            ("AWS_REGION", "eu-west-1"),
            ("BACKEND1_URL", "http://backend1.xray-demo.internal:8081/"),
        ]);
        let c = BackendConfig::from_lookup(Role::Backend1, &env).unwrap();
        assert_eq!(c.endpoint, DynamoEndpoint::Aws);
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.common.bind.to_string(), "0.0.0.0:9000");
        let b = BffConfig::from_lookup(&env).unwrap();
        assert_eq!(b.backend1_url, "http://backend1.xray-demo.internal:8081");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = BackendConfig::from_lookup(Role::Backend1, &lookup(&[("PORT", "x")])).unwrap_err();
        assert!(e.0.starts_with("PORT"), "{e}");
        let e =
            BackendConfig::from_lookup(Role::Backend1, &lookup(&[("DYNAMODB_ENDPOINT", "nope")]))
                .unwrap_err();
        assert!(e.0.starts_with("DYNAMODB_ENDPOINT"), "{e}");
        let e = BffConfig::from_lookup(&lookup(&[("BACKEND2_URL", "ftp://x")])).unwrap_err();
        assert!(e.0.starts_with("BACKEND2_URL"), "{e}");
    }

    #[test]
    fn https_backend_urls_are_refused() {
        let e = BffConfig::from_lookup(&lookup(&[("BACKEND1_URL", "https://backend1:8443")]))
            .unwrap_err();
        assert!(e.0.starts_with("BACKEND1_URL"), "{e}");
        assert!(e.0.contains("https:// is not supported"), "{e}");
        let e =
            BffConfig::from_lookup(&lookup(&[("BACKEND2_URL", "HTTPS://backend2")])).unwrap_err();
        assert!(e.0.starts_with("BACKEND2_URL"), "{e}");
        assert!(e.0.contains("https:// is not supported"), "{e}");
        let b =
            BffConfig::from_lookup(&lookup(&[("BACKEND2_URL", "HTTP://backend2:8082")])).unwrap();
        assert_eq!(b.backend2_url, "HTTP://backend2:8082");
    }
}
