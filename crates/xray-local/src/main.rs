//! `xray-local` binary: parse flags, start the server, wait for Ctrl-C.

use std::process::ExitCode;

use xray_local::Server;
use xray_local::config::{Command, Config, USAGE};

// The binary's whole user interface is a few lines on the terminal.
#[allow(clippy::print_stdout, clippy::print_stderr)]
#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Run(c)) => c,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xray-local: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xray-local: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("xray-local listening");
    println!(
        "  segments (UDP):      {} (also OTLP datagrams, T1S)",
        server.udp_addr()
    );
    println!("  sampling API (TCP):  {}", server.tcp_addr());
    println!("  UI:                  http://{}/", server.ui_addr());
    println!(
        "  X-Ray API:           http://{} (aws xray ... --endpoint-url http://{})",
        server.ui_addr(),
        server.ui_addr()
    );
    println!(
        "  OTLP/HTTP:           http://{}/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT=http://{})",
        server.ui_addr(),
        server.ui_addr()
    );
    println!(
        "  JSON API:            http://{}/api/stats",
        server.ui_addr()
    );
    println!(
        "Set AWS_XRAY_DAEMON_ADDRESS=\"udp:{} tcp:{}\" in your app. Ctrl-C to stop.",
        server.udp_addr(),
        server.tcp_addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}
