//! Tests of the demo runner: ports, an xray-local already running, the summary.

use super::plain_log::plain;
use super::*;

fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings(ports: [u16; 3], xray_port: u16, xray_ui_port: u16) -> Settings {
    Settings {
        requests: 1,
        exit_after_summary: true,
        otlp: false,
        service_ports: ports,
        dynamodb_port: free_port(),
        xray_port,
        xray_ui_port,
        moto_server: PathBuf::from("moto_server"),
        dynamodb_endpoint: None,
        bin_dir: PathBuf::from("."),
        log_dir: PathBuf::from("."),
        xray_local_rules: PathBuf::from("rules.json"),
        sdk_rules: PathBuf::from("rules.json"),
    }
}

#[tokio::test]
async fn busy_ports_are_reported_together() {
    let client = reqwest::Client::new();
    let bff = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let ui = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let bff_port = bff.local_addr().unwrap().port();
    let ui_port = ui.local_addr().unwrap().port();
    let s = settings([bff_port, free_port(), free_port()], free_port(), ui_port);
    let err = check_ports(&s, true, &client).await.unwrap_err();
    assert!(err.starts_with("2 ports are not free:"), "{err}");
    assert!(err.contains(&format!("TCP port {bff_port} ")), "{err}");
    assert!(err.contains("DEMO_BFF_PORT"), "{err}");
    assert!(err.contains(&format!("TCP port {ui_port} ")), "{err}");
    assert!(err.contains("DEMO_XRAY_UI_PORT"), "{err}");

    let free = settings(
        [free_port(), free_port(), free_port()],
        free_port(),
        free_port(),
    );
    assert!(check_ports(&free, true, &client).await.unwrap().is_none());
}

/// A small datagram of a traced request, as a service would send it.
fn send_segment(udp: SocketAddr) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let doc = serde_json::json!({
        "name": "xray-demo-bff", "id": "53995c3f42cd8ad8",
        "trace_id": format!("1-{:08x}-bd862e3fe1be46a994272793", now as u64),
        "start_time": now - 0.01, "end_time": now,
        "http": {"request": {"method": "GET", "url": "http://127.0.0.1/api/now"},
                 "response": {"status": 200}}
    });
    let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{doc}");
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(datagram.as_bytes(), udp)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_xray_local_is_used_and_the_summary_has_no_client_row() {
    let client = reqwest::Client::new();
    let xray = xray_local::Server::start(xray_local::Config::ephemeral())
        .await
        .unwrap();
    // The demo's daemon port is xray-local's UDP port (its TCP port differs here).
    let s = settings(
        [free_port(), free_port(), free_port()],
        xray.udp_addr().port(),
        xray.ui_addr().port(),
    );
    let stats = check_ports(&s, true, &client).await.unwrap();
    assert!(stats.is_some());

    send_segment(xray.udp_addr());
    let ui = s.ui_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = summary(&client, &ui).await.unwrap();
        if text.contains("xray-demo-bff") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let services = text
        .split("Services:")
        .nth(1)
        .and_then(|t| t.split("Edges").next())
        .unwrap();
    assert!(services.contains("xray-demo-bff"), "{text}");
    assert!(!services.contains("client"), "{text}");
    assert!(text.contains("client -> xray-demo-bff"), "{text}");
    xray.shutdown().await;
}

#[test]
fn colour_codes_are_taken_out_of_log_lines() {
    // As moto's web server (werkzeug) writes its request lines.
    let line = "127.0.0.1 - - [07/Dec/2026 09:22:42] \"\u{1b}[31m\u{1b}[1mPOST / HTTP/1.1\u{1b}[0m\" 400 -";
    assert_eq!(
        plain(line),
        "127.0.0.1 - - [07/Dec/2026 09:22:42] \"POST / HTTP/1.1\" 400 -"
    );
    assert_eq!(
        plain("\u{1b}[33mPress CTRL+C to quit\u{1b}[0m"),
        "Press CTRL+C to quit"
    );
    assert!(matches!(
        plain("no codes"),
        std::borrow::Cow::Borrowed("no codes")
    ));
    assert_eq!(plain("cut \u{1b}["), "cut ");
}
