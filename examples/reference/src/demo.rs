//! The one-command demo: xray-local as the daemon, moto (or any DynamoDB endpoint) as the
//! table, the three services as separate processes on 127.0.0.1, a burst of requests, and a
//! summary of what was traced, read from xray-local's JSON API.
//!
//! Settings (environment), all optional:
//!
//! | variable | default |
//! | --- | --- |
//! | `DEMO_REQUESTS` | 40 requests to `/api/now` (1 to 1000) |
//! | `DEMO_EXIT_AFTER_SUMMARY` | unset: keep running until Ctrl-C; `1`: exit after the summary |
//! | `DEMO_BFF_PORT`, `DEMO_BACKEND1_PORT`, `DEMO_BACKEND2_PORT` | 8080, 8081, 8082 |
//! | `DEMO_DYNAMODB_PORT` | 8000 (where moto is started) |
//! | `DEMO_XRAY_PORT`, `DEMO_XRAY_UI_PORT` | 2000 (UDP segments and TCP sampling), 2080 (UI) |
//! | `DEMO_MOTO_SERVER` | `.venv/bin/moto_server` (scripts/demo.sh installs it) |
//! | `DYNAMODB_ENDPOINT` | unset: start moto; set: use that endpoint, start nothing |
//! | `DEMO_LOG_DIR` | `target/demo-logs` (one log file per process) |
//! | `DEMO_EXPORTER` | `udp`: the services send segment documents to xray-local's daemon port; `otlp`: they send OpenTelemetry spans (OTLP/HTTP, protobuf) to xray-local's `/v1/traces` |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::config::{DEFAULT_REGION, DEFAULT_TABLE_NAME, DynamoEndpoint, Role, process_env};

mod plain_log;

/// Writes a line to stdout (the demo's user interface), ignoring a closed pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// Where this package's sources are: the default place of the rules files.
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests sent to `/api/now`.
    pub requests: usize,
    /// Exit after the summary instead of waiting for Ctrl-C.
    pub exit_after_summary: bool,
    /// The services export OTLP spans instead of UDP segment documents.
    pub otlp: bool,
    /// Ports of bff, backend1, backend2.
    pub service_ports: [u16; 3],
    /// Port moto is started on.
    pub dynamodb_port: u16,
    /// xray-local UDP + TCP port.
    pub xray_port: u16,
    /// xray-local UI port.
    pub xray_ui_port: u16,
    /// The moto server executable.
    pub moto_server: PathBuf,
    /// An existing DynamoDB endpoint (then moto is not started).
    pub dynamodb_endpoint: Option<String>,
    /// Where the service binaries are.
    pub bin_dir: PathBuf,
    /// Where the logs go.
    pub log_dir: PathBuf,
    /// xray-local's (centralized) sampling rules.
    pub xray_local_rules: PathBuf,
    /// The services' local sampling rules.
    pub sdk_rules: PathBuf,
}

fn port(key: &str, default: u16) -> Result<u16, String> {
    match process_env(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{key}: `{v}` is not a port number")),
    }
}

impl Settings {
    /// From the environment, with the defaults in the module documentation.
    pub fn from_env() -> Result<Self, String> {
        let requests = match process_env("DEMO_REQUESTS") {
            None => 40,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("DEMO_REQUESTS: `{v}` is not a number from 1 to 1000"))?,
        };
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot locate the demo executable: {e}"))?;
        let bin_dir = exe
            .parent()
            .map(Path::to_path_buf)
            .ok_or("the demo executable has no parent directory")?;
        let repo_root = Path::new(MANIFEST_DIR).join("../..");
        let config_dir = Path::new(MANIFEST_DIR).join("config");
        Ok(Settings {
            requests,
            exit_after_summary: process_env("DEMO_EXIT_AFTER_SUMMARY")
                .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false")),
            otlp: match process_env("DEMO_EXPORTER") {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("udp") => false,
                Some(v) if v.eq_ignore_ascii_case("otlp") => true,
                Some(v) => return Err(format!("DEMO_EXPORTER: `{v}` is neither `udp` nor `otlp`")),
            },
            service_ports: [
                port("DEMO_BFF_PORT", Role::Bff.default_port())?,
                port("DEMO_BACKEND1_PORT", Role::Backend1.default_port())?,
                port("DEMO_BACKEND2_PORT", Role::Backend2.default_port())?,
            ],
            dynamodb_port: port("DEMO_DYNAMODB_PORT", 8000)?,
            xray_port: port("DEMO_XRAY_PORT", 2000)?,
            xray_ui_port: port("DEMO_XRAY_UI_PORT", 2080)?,
            moto_server: process_env("DEMO_MOTO_SERVER")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root.join(".venv/bin/moto_server")),
            dynamodb_endpoint: process_env("DYNAMODB_ENDPOINT"),
            log_dir: process_env("DEMO_LOG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    let target = repo_root.join("target");
                    std::fs::canonicalize(&target)
                        .unwrap_or(target)
                        .join("demo-logs")
                }),
            bin_dir,
            xray_local_rules: config_dir.join("xray-local-rules.json"),
            sdk_rules: config_dir.join("sampling-rules.json"),
        })
    }

    fn bff_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.service_ports[0])
    }

    fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.xray_ui_port)
    }
}

/// The processes the demo started; killed when dropped, and by [`Children::stop`].
#[derive(Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    async fn stop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.start_kill();
        }
        for (name, child) in &mut self.0 {
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(_) => {}
                Err(_) => say!("  warning: {name} did not stop within 5 s"),
            }
        }
        self.0.clear();
    }

    /// The first child that has exited, with its status.
    fn exited(&mut self) -> Option<String> {
        self.0
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited ({status})")),
                _ => None,
            })
    }
}

/// `main` of the `demo` binary.
pub fn main() -> ExitCode {
    crate::telemetry::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("demo: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let mut children = Children::default();
        let result = run(&settings, &mut children).await;
        if !children.0.is_empty() {
            say!("\nStopping {} process(es)...", children.0.len());
        }
        children.stop().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say!("\ndemo failed: {e}");
                say!("Logs: {}", settings.log_dir.display());
                ExitCode::FAILURE
            }
        }
    })
}

/// Checks every port the demo needs and fails with all the problems at once. A running
/// xray-local on the daemon and UI ports is not a problem: the demo uses it (`Some(stats)`).
async fn check_ports(
    s: &Settings,
    start_moto: bool,
    client: &reqwest::Client,
) -> Result<Option<Value>, String> {
    let running_xray_local = running_xray_local(client, &s.ui_url()).await;
    let mut tcp = vec![
        (s.service_ports[0], "the BFF", "DEMO_BFF_PORT"),
        (s.service_ports[1], "backend #1", "DEMO_BACKEND1_PORT"),
        (s.service_ports[2], "backend #2", "DEMO_BACKEND2_PORT"),
    ];
    if running_xray_local.is_none() {
        tcp.push((s.xray_port, "xray-local's sampling API", "DEMO_XRAY_PORT"));
        tcp.push((s.xray_ui_port, "xray-local's UI", "DEMO_XRAY_UI_PORT"));
    }
    if start_moto {
        tcp.push((s.dynamodb_port, "moto (DynamoDB)", "DEMO_DYNAMODB_PORT"));
    }
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for (port, what, var) in &tcp {
        if let Some(other) = seen.insert(*port, *what) {
            problems.push(format!(
                "{what} and {other} are both set to port {port}: give one another with {var}=<port>"
            ));
            continue;
        }
        if let Err(e) = StdTcpListener::bind((Ipv4Addr::LOCALHOST, *port)) {
            problems.push(format!(
                "TCP port {port} on 127.0.0.1 (for {what}) is not free: {e}; stop what uses it (`ss -ltnp 'sport = :{port}'`) or set {var}=<port>"
            ));
        }
    }
    if running_xray_local.is_none()
        && let Err(e) = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, s.xray_port))
    {
        problems.push(format!(
            "UDP port {port} on 127.0.0.1 (xray-local's segment intake) is not free: {e}; is an X-Ray daemon running? Stop it (`ss -lunp 'sport = :{port}'`) or set DEMO_XRAY_PORT=<port>",
            port = s.xray_port
        ));
    }
    match problems.len() {
        0 => Ok(running_xray_local),
        1 => Err(problems.remove(0)),
        n => Err(format!(
            "{n} ports are not free:\n{}",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// The stats of an xray-local already answering on the UI port, if one is.
async fn running_xray_local(client: &reqwest::Client, ui: &str) -> Option<Value> {
    let answer = client
        .get(format!("{ui}/api/stats"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let stats: Value = answer.json().await.ok()?;
    stats.pointer("/Store/Traces").is_some().then_some(stats)
}

fn log_file(s: &Settings, name: &str) -> Result<(std::fs::File, PathBuf), String> {
    std::fs::create_dir_all(&s.log_dir)
        .map_err(|e| format!("cannot create {}: {e}", s.log_dir.display()))?;
    let path = s.log_dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok((file, path))
}

/// Starts `program` with its output going to `<log dir>/<name>.log`, as plain text: colour
/// codes (moto's web server writes them whatever its output is) are taken out.
fn spawn(
    s: &Settings,
    children: &mut Children,
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> Result<(), String> {
    let (log, _) = log_file(s, name)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    if let Some(out) = child.stdout.take() {
        tokio::spawn(plain_log::copy_plain(out, std::sync::Arc::clone(&log)));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(plain_log::copy_plain(err, log));
    }
    children.0.push((name.to_string(), child));
    Ok(())
}

/// Waits (bounded) until `check` succeeds, failing early when a child exits.
async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    children: &mut Children,
    mut check: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if let Some(exit) = children.exited() {
            return Err(format!("{exit} while waiting for {what}"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} was not ready within {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tcp_open(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", crate::error::chain(&e)))?;
    let status = r.status();
    if !status.is_success() {
        return Err(format!("GET {url}: {status}"));
    }
    r.json()
        .await
        .map_err(|e| format!("GET {url}: invalid JSON: {e}"))
}

async fn run(s: &Settings, children: &mut Children) -> Result<(), String> {
    let start_moto = s.dynamodb_endpoint.is_none();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let running = check_ports(s, start_moto, &client).await?;

    // 1. xray-local, in this process (the daemon address the services send to), unless one
    //    is already running on the same ports.
    let xray = match running {
        Some(stats) => {
            say!(
                "==> Using the xray-local already running (daemon on 127.0.0.1:{}, UI on {}): it holds {} traces from before, and its own sampling rules apply",
                s.xray_port,
                s.ui_url(),
                stats.pointer("/Store/Traces").unwrap_or(&Value::Null),
            );
            None
        }
        None => {
            say!(
                "==> xray-local (daemon on 127.0.0.1:{}, UI on {})",
                s.xray_port,
                s.ui_url()
            );
            let mut config = xray_local::Config::default();
            config.udp = SocketAddr::from((Ipv4Addr::LOCALHOST, s.xray_port));
            config.tcp = config.udp;
            config.ui = SocketAddr::from((Ipv4Addr::LOCALHOST, s.xray_ui_port));
            config.rules = Some(s.xray_local_rules.clone());
            config.settle = Duration::from_secs(5);
            Some(
                xray_local::Server::start(config)
                    .await
                    .map_err(|e| format!("xray-local: {e}"))?,
            )
        }
    };

    // 2. DynamoDB: moto's server unless an endpoint was given.
    let endpoint = match &s.dynamodb_endpoint {
        Some(e) => {
            say!("==> DynamoDB at {e} (DYNAMODB_ENDPOINT)");
            e.clone()
        }
        None => {
            say!("==> moto as DynamoDB on 127.0.0.1:{}", s.dynamodb_port);
            if !s.moto_server.exists() {
                return Err(format!(
                    "{} not found: run scripts/demo.sh (it installs moto[server] into .venv), or set DEMO_MOTO_SERVER or DYNAMODB_ENDPOINT",
                    s.moto_server.display()
                ));
            }
            spawn(
                s,
                children,
                "moto",
                &s.moto_server,
                &[
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    s.dynamodb_port.to_string(),
                ],
                &[],
            )?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, s.dynamodb_port));
            wait_until("moto", Duration::from_secs(60), children, || tcp_open(addr)).await?;
            format!("http://127.0.0.1:{}", s.dynamodb_port)
        }
    };
    let dynamo =
        crate::dynamo::admin_client(&DynamoEndpoint::Local(endpoint.clone()), DEFAULT_REGION).await;
    crate::dynamo::ensure_table(&dynamo, DEFAULT_TABLE_NAME).await?;
    say!("    table {DEFAULT_TABLE_NAME} ready");

    // 3. The three services, as separate processes.
    let daemon = format!("127.0.0.1:{}", s.xray_port);
    let sdk_rules = s.sdk_rules.display().to_string();
    let urls: Vec<String> = s
        .service_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for (i, role) in [Role::Backend1, Role::Backend2, Role::Bff]
        .into_iter()
        .enumerate()
    {
        let idx = [1, 2, 0][i];
        let port = s.service_ports[idx].to_string();
        say!(
            "==> {} on {}{}",
            role.service_name(),
            urls[idx],
            if s.otlp {
                " (spans over OTLP/HTTP)"
            } else {
                ""
            }
        );
        let mut env: Vec<(&str, String)> = vec![
            ("PORT", port),
            ("BIND_ADDRESS", "127.0.0.1".into()),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.clone()),
            ("AWS_XRAY_SAMPLING_RULES", sdk_rules.clone()),
            ("AWS_REGION", DEFAULT_REGION.into()),
            ("TABLE_NAME", DEFAULT_TABLE_NAME.into()),
            ("DYNAMODB_ENDPOINT", endpoint.clone()),
            ("BACKEND1_URL", urls[1].clone()),
            ("BACKEND2_URL", urls[2].clone()),
        ];
        if s.otlp {
            // The same recording as OpenTelemetry spans, to xray-local's OTLP/HTTP intake.
            // Sampling rules still come from its daemon port. A short schedule delay so the
            // summary does not wait for the exporter's default 5 s batches.
            env.push(("OTEL_TRACES_EXPORTER", "otlp".into()));
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", s.ui_url()));
            env.push(("OTEL_BSP_SCHEDULE_DELAY", "200".into()));
        }
        if process_env("RUST_LOG").is_none() {
            env.push(("RUST_LOG", "info".into()));
        }
        let program = s.bin_dir.join(role.id());
        if !program.exists() {
            return Err(format!(
                "{} not found: build first with `cargo build -p xray-demo --bins` (scripts/demo.sh does)",
                program.display()
            ));
        }
        spawn(s, children, role.id(), &program, &[], &env)?;
    }
    for url in &urls {
        let health = format!("{url}/health");
        wait_until(&health, Duration::from_secs(30), children, || {
            http_ok(&client, &health)
        })
        .await?;
    }

    // 4. Traffic.
    let ui = s.ui_url();
    // A running xray-local may hold traces from before.
    let before = get_json(&client, &format!("{ui}/api/TraceSummaries?limit=1000"))
        .await
        .map_or(0, |v| count(&v, "TraceSummaries"));
    let bff = s.bff_url();
    say!(
        "==> Sending {} requests to {bff}/api/now (and 5 to /health, which are not sampled)",
        s.requests
    );
    let mut failures = 0usize;
    for i in 0..s.requests {
        match get_json(&client, &format!("{bff}/api/now")).await {
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    say!("\n    first failure: {e}");
                }
            }
        }
        progress(i + 1, s.requests, failures);
    }
    for _ in 0..5 {
        let _ = client.get(format!("{bff}/health")).send().await;
    }
    say!("");
    if failures == s.requests {
        return Err(format!(
            "every request failed; see the logs in {}",
            s.log_dir.display()
        ));
    }

    // 5. What was traced.
    let expected = before + s.requests - failures;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let summaries = get_json(&client, &format!("{ui}/api/TraceSummaries?limit=1000")).await?;
        let n = count(&summaries, "TraceSummaries");
        if n >= expected || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let the last documents of each trace arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = summary(&client, &ui).await?;
    say!("{text}");
    say!("Open the viewer: {ui}/      The page: {bff}/");
    say!("Logs of every process: {}", s.log_dir.display());

    if s.exit_after_summary {
        say!("DEMO_EXIT_AFTER_SUMMARY is set: stopping.");
    } else {
        say!("Running. Press Ctrl-C to stop everything.");
        loop {
            tokio::select! {
                _ = crate::shutdown_signal() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Some(exit) = children.exited() {
                        if let Some(xray) = xray {
                            xray.shutdown().await;
                        }
                        return Err(exit);
                    }
                }
            }
        }
    }
    if let Some(xray) = xray {
        xray.shutdown().await;
    }
    Ok(())
}

fn progress(done: usize, total: usize, failures: usize) {
    const WIDTH: usize = 30;
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        // Logs and CI: a line at every quarter instead of a redrawn bar.
        if done == total || done.is_multiple_of((total / 4).max(1)) {
            say!("    {done}/{total} sent, {failures} failed");
        }
        return;
    }
    let filled = done * WIDTH / total.max(1);
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\r    [{}{}] {done}/{total}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        if failures > 0 {
            format!(" ({failures} failed)")
        } else {
            String::new()
        }
    );
    let _ = out.flush();
}

fn count(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

/// The summary of what xray-local received: services, edges, counts and the slowest trace.
pub async fn summary(client: &reqwest::Client, ui: &str) -> Result<String, String> {
    let graph = get_json(client, &format!("{ui}/api/ServiceGraph")).await?;
    let summaries = get_json(client, &format!("{ui}/api/TraceSummaries?limit=1000")).await?;
    let stats = get_json(client, &format!("{ui}/api/stats")).await?;
    let mut out = String::new();
    let _ = writeln!(out, "\n==> What xray-local received");
    let _ = writeln!(
        out,
        "    {} traces, {} documents",
        stats.pointer("/Store/Traces").unwrap_or(&Value::Null),
        stats.pointer("/Store/Documents").unwrap_or(&Value::Null)
    );
    let services = graph
        .get("Services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let name_of = |id: &Value| -> String {
        services
            .iter()
            .find(|s| s.get("ReferenceId") == Some(id))
            .and_then(|s| s.get("Name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let _ = writeln!(out, "\n    Services:");
    // The `client` node (the callers) has no statistics of its own: its calls are its edges.
    for svc in services
        .iter()
        .filter(|s| s.get("Type").and_then(Value::as_str) != Some("client"))
    {
        let name = svc.get("Name").and_then(Value::as_str).unwrap_or("?");
        let kind = svc.get("Type").and_then(Value::as_str).unwrap_or("?");
        let total = svc
            .pointer("/SummaryStatistics/TotalCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let _ = writeln!(out, "      {name:<28} {kind:<22} {total:>5} requests");
    }
    let _ = writeln!(out, "\n    Edges (service map):");
    for svc in &services {
        let from = svc.get("Name").and_then(Value::as_str).unwrap_or("?");
        for edge in svc
            .get("Edges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let to = edge.get("ReferenceId").map(&name_of).unwrap_or_default();
            let n = edge
                .pointer("/SummaryStatistics/TotalCount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let total_time = edge
                .pointer("/SummaryStatistics/TotalResponseTime")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let avg_ms = if n > 0 {
                total_time * 1000.0 / n as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "      {from:>20} -> {to:<22} {n:>5} calls, avg {avg_ms:>7.1} ms"
            );
        }
    }
    let list = summaries
        .get("TraceSummaries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let faults = list
        .iter()
        .filter(|t| t.get("HasFault") == Some(&Value::Bool(true)))
        .count();
    let _ = writeln!(
        out,
        "\n    Traces: {} ({} with a fault)",
        list.len(),
        faults
    );
    let slowest = list.iter().max_by(|a, b| {
        let d = |t: &Value| t.get("Duration").and_then(Value::as_f64).unwrap_or(0.0);
        d(a).total_cmp(&d(b))
    });
    if let Some(t) = slowest {
        let id = t.get("Id").and_then(Value::as_str).unwrap_or("?");
        let ms = t.get("Duration").and_then(Value::as_f64).unwrap_or(0.0) * 1000.0;
        let url = t
            .pointer("/Http/HttpURL")
            .and_then(Value::as_str)
            .unwrap_or("");
        let _ = writeln!(out, "    Slowest: {id}  {ms:.1} ms  {url}");
        let _ = writeln!(out, "             {ui}/#trace={id}");
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
