//! A trace continued from a `traceparent` whose trace ID has no recent time in it (X-Ray
//! rejects such IDs outside Transaction Search) is logged once per process, at warn level,
//! and continued anyway. Its own test binary: the warning is once per process, and the
//! subscriber that collects it is the process's global one (the server runs on the runtime's
//! threads).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Daemon, serve};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use xray_sdk::testing::UdpCapture;
use xray_sdk_tower::XRayLayer;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn warnings(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("does not start with a recent time"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_without_a_recent_time_is_continued_and_warned_about_once() {
    let logs = Logs::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("xray_sdk=warn"))
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish(),
    )
    .unwrap();
    let capture = UdpCapture::start().unwrap();
    let daemon = Daemon {
        recorder: capture.recorder("front"),
        capture: Arc::new(capture),
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(app).await;
    let client = common::client();
    let send = |name: &'static str, value: String| {
        let req = client.get(format!("http://{addr}/")).header(name, value);
        async move {
            let res = req.send().await.unwrap();
            assert!(res.status().is_success());
        }
    };

    // A W3C ID that starts with the current time, and an old X-Ray ID in the X-Ray header:
    // no warning (only IDs that came through traceparent are checked).
    let now = common::now_secs() as u64;
    let recent = format!("{now:08x}a006649127e371903a2de979");
    send("traceparent", format!("00-{recent}-00f067aa0ba902b7-01")).await;
    send(
        "x-amzn-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned(),
    )
    .await;
    let docs = daemon.documents(2).await;
    assert_eq!(docs.len(), 2);
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());

    // Three random W3C IDs: each trace continued, one warning.
    let ids = [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
        "ffffffff16cd43dd8448eb211c80319c",
    ];
    for id in ids {
        send("traceparent", format!("00-{id}-00f067aa0ba902b7-01")).await;
    }
    let docs = daemon.documents(3).await;
    let mut traces: Vec<String> = docs
        .iter()
        .map(|d| d["trace_id"].as_str().unwrap().replace('-', "")[1..].to_owned())
        .collect();
    traces.sort();
    let mut expected: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(traces, expected);
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains(" WARN "), "{}", warnings[0]);
    assert!(
        warnings[0].contains("trace_id=1-4bf92f35-77b34da6a3ce929d0e0e4736"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("Transaction Search"),
        "{}",
        warnings[0]
    );
}
