//! Shared test scaffolding: a real server on 127.0.0.1:0, a real client, and the documents
//! captured on a real UDP socket.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use serde_json::Value;
use xray_sdk::Recorder;
use xray_sdk::testing::UdpCapture;

pub const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
pub const PARENT: &str = "53995c3f42cd8ad8";
pub const WAIT: Duration = Duration::from_secs(5);

/// A capture socket and a recorder that sends to it.
pub struct Daemon {
    pub capture: Arc<UdpCapture>,
    pub recorder: Recorder,
}

impl Daemon {
    /// Samples everything.
    pub fn new(service: &'static str) -> Self {
        let capture = UdpCapture::start().expect("bind capture socket");
        let recorder = capture.recorder(service);
        Daemon {
            capture: Arc::new(capture),
            recorder,
        }
    }

    /// Samples nothing unless the header says so.
    pub fn never_sampling(service: &'static str) -> Self {
        Self::with_sampler(service, xray_sdk::sampling::NeverSample)
    }

    pub fn with_sampler(service: &'static str, sampler: impl xray_sdk::Sampler) -> Self {
        let capture = UdpCapture::start().expect("bind capture socket");
        let recorder = capture
            .recorder_builder(service)
            .sampler(sampler)
            .build()
            .expect("recorder");
        Daemon {
            capture: Arc::new(capture),
            recorder,
        }
    }

    /// Flushes the emitter and waits for `n` documents.
    pub async fn documents(&self, n: usize) -> Vec<Value> {
        let (capture, recorder) = (Arc::clone(&self.capture), self.recorder.clone());
        tokio::task::spawn_blocking(move || {
            recorder.flush(WAIT).expect("flush");
            capture.documents(n, WAIT)
        })
        .await
        .expect("join")
    }

    /// The single document of one request.
    pub async fn document(&self) -> Value {
        let mut docs = self.documents(1).await;
        assert_eq!(docs.len(), 1, "expected one document");
        docs.remove(0)
    }

    /// Flushes and asserts that nothing at all arrives.
    pub async fn assert_nothing_sent(&self) {
        let (capture, recorder) = (Arc::clone(&self.capture), self.recorder.clone());
        let got = tokio::task::spawn_blocking(move || {
            recorder.flush(WAIT).expect("flush");
            capture.drain(Duration::from_millis(300))
        })
        .await
        .expect("join");
        assert!(
            got.is_empty(),
            "unexpected documents: {:?}",
            got.iter().map(|d| d.document()).collect::<Vec<_>>()
        );
    }
}

/// Serves `app` on 127.0.0.1:0 with the peer address available as `ConnectInfo`.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    addr
}

/// A client that never uses a proxy and gives up after 10 seconds.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .user_agent("xray-test/1.0")
        .build()
        .expect("client")
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A response body fed through a channel, one data frame per message.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
