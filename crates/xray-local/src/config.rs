//! Command-line flags and environment variables.
//!
//! Flags win over environment variables, which win over the defaults. The
//! parser is hand-written on purpose: the binary has only a handful of flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to start a [`crate::Server`].
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address for segment documents (daemon protocol).
    pub udp: SocketAddr,
    /// TCP address for the sampling API (`/GetSamplingRules`, `/SamplingTargets`).
    pub tcp: SocketAddr,
    /// TCP address for the web UI and the JSON API.
    pub ui: SocketAddr,
    /// Optional sampling rules file; the built-in rules are used without it.
    pub rules: Option<PathBuf>,
    /// Maximum number of traces kept; the oldest are evicted first.
    pub max_traces: usize,
    /// Approximate memory cap for stored documents, in bytes.
    pub max_bytes: usize,
    /// Forward every accepted datagram, unchanged, to this UDP address.
    pub forward: Option<SocketAddr>,
    /// How long a trace must stay quiet before trace-level checks
    /// (orphan subsegments, unfinished in-progress documents) run.
    pub settle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            udp: SocketAddr::from(([127, 0, 0, 1], 2000)),
            tcp: SocketAddr::from(([127, 0, 0, 1], 2000)),
            ui: SocketAddr::from(([127, 0, 0, 1], 2080)),
            rules: None,
            max_traces: 10_000,
            max_bytes: 256 * 1024 * 1024,
            forward: None,
            settle: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// A configuration for tests: every listener on `127.0.0.1:0`.
    pub fn ephemeral() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            udp: any,
            tcp: any,
            ui: any,
            ..Self::default()
        }
    }

    /// Builds a configuration from command-line arguments (without the
    /// program name) and an environment lookup function.
    pub fn from_args<I, F>(args: I, env: F) -> Result<Command, InvalidConfig>
    where
        I: IntoIterator<Item = String>,
        F: Fn(&str) -> Option<String>,
    {
        let mut cfg = Config::default();
        for (var, key) in ENV_VARS {
            if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
                cfg.set(key, value.trim(), var)?;
            }
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Command::Help);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let Some(key) = flag.strip_prefix("--").filter(|k| KEYS.contains(k)) else {
                return Err(InvalidConfig(format!(
                    "unknown argument `{arg}` (try --help)"
                )));
            };
            let value = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(InvalidConfig(format!("flag `{flag}` needs a value"))),
            };
            cfg.set(key, &value, &flag)?;
        }
        Ok(Command::Run(cfg))
    }

    fn set(&mut self, key: &str, value: &str, source: &str) -> Result<(), InvalidConfig> {
        let bad = |what: &str| InvalidConfig(format!("{source}: `{value}` is not {what}"));
        match key {
            "udp" => self.udp = value.parse().map_err(|_| bad("an IP:port address"))?,
            "tcp" => self.tcp = value.parse().map_err(|_| bad("an IP:port address"))?,
            "ui" => self.ui = value.parse().map_err(|_| bad("an IP:port address"))?,
            "forward" => self.forward = Some(value.parse().map_err(|_| bad("an IP:port address"))?),
            "rules" => self.rules = Some(PathBuf::from(value)),
            "max-traces" => {
                self.max_traces = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive integer"))?
            }
            "max-bytes" => self.max_bytes = parse_bytes(value).ok_or_else(|| bad("a size"))?,
            "settle-secs" => {
                let secs: f64 = value.parse().map_err(|_| bad("a number of seconds"))?;
                if !(0.0..=86_400.0).contains(&secs) {
                    return Err(bad("between 0 and 86400 seconds"));
                }
                self.settle = Duration::from_secs_f64(secs);
            }
            _ => return Err(InvalidConfig(format!("unknown setting `{key}`"))),
        }
        Ok(())
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start the server with this configuration.
    Run(Config),
    /// Print the usage text.
    Help,
}

/// A flag or environment variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig(pub String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

const KEYS: [&str; 8] = [
    "udp",
    "tcp",
    "ui",
    "rules",
    "max-traces",
    "max-bytes",
    "forward",
    "settle-secs",
];

const ENV_VARS: [(&str, &str); 8] = [
    ("XRAY_LOCAL_UDP", "udp"),
    ("XRAY_LOCAL_TCP", "tcp"),
    ("XRAY_LOCAL_UI", "ui"),
    ("XRAY_LOCAL_RULES", "rules"),
    ("XRAY_LOCAL_MAX_TRACES", "max-traces"),
    ("XRAY_LOCAL_MAX_BYTES", "max-bytes"),
    ("XRAY_LOCAL_FORWARD", "forward"),
    ("XRAY_LOCAL_SETTLE_SECS", "settle-secs"),
];

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
xray-local: a local, offline stand-in for the AWS X-Ray daemon

USAGE: xray-local [FLAGS]

  --udp ADDR          segment intake (UDP)          [XRAY_LOCAL_UDP, default 127.0.0.1:2000]
  --tcp ADDR          sampling API (TCP)            [XRAY_LOCAL_TCP, default 127.0.0.1:2000]
  --ui ADDR           web UI and JSON API           [XRAY_LOCAL_UI, default 127.0.0.1:2080]
  --rules FILE        sampling rules JSON file      [XRAY_LOCAL_RULES, default: built-in rules]
  --max-traces N      traces kept in memory         [XRAY_LOCAL_MAX_TRACES, default 10000]
  --max-bytes SIZE    approximate memory cap, e.g. 256M, 1G, 500000
                                                    [XRAY_LOCAL_MAX_BYTES, default 256M]
  --forward ADDR      also send accepted datagrams to another daemon
                                                    [XRAY_LOCAL_FORWARD]
  --settle-secs S     quiet time before trace-level checks run
                                                    [XRAY_LOCAL_SETTLE_SECS, default 30]
  -h, --help          this text
";

/// Parses `123`, `64K`, `256M` or `1G` (binary multiples).
fn parse_bytes(value: &str) -> Option<usize> {
    let v = value.trim();
    let (digits, mult) = match v.chars().last()?.to_ascii_uppercase() {
        'K' => (&v[..v.len() - 1], 1usize << 10),
        'M' => (&v[..v.len() - 1], 1 << 20),
        'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()?
        .checked_mul(mult)
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, InvalidConfig> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_args(args.iter().map(|s| s.to_string()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn flags_override_env() {
        let Ok(Command::Run(cfg)) = parse(
            &["--udp", "127.0.0.1:3000", "--max-bytes=1M"],
            &[
                ("XRAY_LOCAL_UDP", "127.0.0.1:4000"),
                ("XRAY_LOCAL_UI", "127.0.0.1:9"),
            ],
        ) else {
            panic!("expected a run command");
        };
        assert_eq!(cfg.udp.port(), 3000);
        assert_eq!(cfg.ui.port(), 9);
        assert_eq!(cfg.max_bytes, 1 << 20);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&["--udp", "nope"], &[]).is_err());
        assert!(parse(&["--udp"], &[]).is_err());
        assert!(parse(&["--bogus", "1"], &[]).is_err());
        assert!(parse(&["--max-traces", "0"], &[]).is_err());
        assert!(parse(&[], &[("XRAY_LOCAL_MAX_BYTES", "x")]).is_err());
        assert!(matches!(parse(&["--help"], &[]), Ok(Command::Help)));
    }
}
