//! Test support: an in-process HTTP client that replays canned responses, a real HTTP client
//! (reqwest, plain http) for moto, a recording proxy, and client setup.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedCredentialsProvider;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xray_sdk::testing::{UdpCapture, flatten};
use xray_sdk_aws::XRayInterceptor;

/// The moto endpoint from `XRAY_TEST_DYNAMODB_ENDPOINT`. Without it: a failure under CI, a
/// skip message otherwise.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("XRAY_TEST_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "XRAY_TEST_DYNAMODB_ENDPOINT is not set and CI is: run the tests through \
                 scripts/with-moto.sh (e.g. scripts/with-moto.sh cargo test -p xray-sdk-aws)"
            );
            eprintln!("skipped: set XRAY_TEST_DYNAMODB_ENDPOINT (scripts/with-moto.sh)");
            None
        }
    }
}

/// The request headers one call sent, lowercased names.
pub type Headers = Vec<(String, String)>;

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A canned response.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Canned {
    pub fn json(status: u16, request_id: &str, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".into()),
                ("x-amzn-requestid", request_id.into()),
                ("content-length", body.len().to_string()),
            ],
            body: body.into(),
        }
    }

    fn to_response(&self) -> HttpResponse {
        let mut r = HttpResponse::new(
            StatusCode::try_from(self.status).expect("valid status"),
            SdkBody::from(self.body.clone()),
        );
        for (k, v) in &self.headers {
            r.headers_mut().insert(*k, v.clone());
        }
        r
    }
}

/// An in-process HTTP client: answers from a script (the last entry repeats), records the
/// headers of every request. No network.
#[derive(Debug, Clone)]
pub struct ReplayClient {
    script: Arc<Mutex<VecDeque<Canned>>>,
    requests: Arc<Mutex<Vec<Headers>>>,
    record: bool,
}

impl ReplayClient {
    pub fn new(script: Vec<Canned>) -> ReplayClient {
        ReplayClient {
            script: Arc::new(Mutex::new(script.into())),
            requests: Arc::default(),
            record: true,
        }
    }

    /// Answers every request with `canned` and records nothing (for benchmarks).
    pub fn fixed(canned: Canned) -> ReplayClient {
        ReplayClient {
            record: false,
            ..ReplayClient::new(vec![canned])
        }
    }

    pub fn requests(&self) -> Vec<Headers> {
        self.requests.lock().unwrap().clone()
    }
}

impl HttpConnector for ReplayClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if self.record {
            let h = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                .collect();
            self.requests.lock().unwrap().push(h);
        }
        let mut script = self.script.lock().unwrap();
        let canned = if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        };
        let result = match canned {
            Some(c) => Ok(c.to_response()),
            None => Err(ConnectorError::io("replay script is empty".into())),
        };
        HttpConnectorFuture::ready(result)
    }
}

impl HttpClient for ReplayClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A real HTTP client over reqwest (plain http, no TLS: moto listens on loopback).
#[derive(Debug, Clone)]
pub struct ReqwestClient(reqwest::Client);

impl ReqwestClient {
    pub fn new() -> ReqwestClient {
        ReqwestClient(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
        )
    }
}

impl HttpConnector for ReqwestClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let mut builder = client.request(method, request.uri());
            for (k, v) in request.headers().iter() {
                if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("host") {
                    builder = builder.header(k, v);
                }
            }
            let body = request
                .body()
                .bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let resp = builder
                .body(body)
                .send()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let mut out = HttpResponse::new(
                StatusCode::try_from(status).map_err(|e| ConnectorError::other(e.into(), None))?,
                SdkBody::from(bytes.to_vec()),
            );
            for (k, v) in headers {
                out.headers_mut().append(k, v);
            }
            Ok(out)
        })
    }
}

impl HttpClient for ReqwestClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The shared AWS configuration of the tests: fixed region and test credentials.
pub fn sdk_config(http: SharedHttpClient, endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .endpoint_url(endpoint)
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build()
}

/// A DynamoDB client with the interceptor, attached the way users do.
pub fn dynamodb(http: impl HttpClient + 'static, endpoint: &str) -> aws_sdk_dynamodb::Client {
    let sdk = sdk_config(SharedHttpClient::new(http), endpoint);
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(XRayInterceptor::new())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Every entity of the captured documents: `(id, parent id, document)`.
pub fn entities(
    capture: &UdpCapture,
    recorder: &xray_sdk::Recorder,
    docs: usize,
) -> Vec<(String, Option<String>, Value)> {
    recorder.flush(Duration::from_secs(5)).expect("flush");
    flatten(&capture.documents(docs, Duration::from_secs(5)))
}

/// The subsegments named `name`.
pub fn named<'a>(
    all: &'a [(String, Option<String>, Value)],
    name: &str,
) -> Vec<&'a (String, Option<String>, Value)> {
    all.iter().filter(|(_, _, d)| d["name"] == name).collect()
}

/// A recording HTTP/1 proxy on 127.0.0.1: records each request's headers and forwards the
/// request, byte for byte, to `upstream` (one upstream connection per request).
pub struct RecordingProxy {
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Headers>>>,
}

impl RecordingProxy {
    pub async fn start(upstream: &str) -> RecordingProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Headers>>> = Arc::default();
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    let _ = proxy_connection(client, &upstream, &seen).await;
                });
            }
        });
        RecordingProxy { endpoint, seen }
    }

    pub fn requests(&self) -> Vec<Headers> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1 message (head, then `content-length` bytes of body; to EOF without it).
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    to_eof: bool,
) -> std::io::Result<Option<(Vec<u8>, Headers)>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = header(&headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    match length {
        Some(len) => {
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        None if to_eof => {
            stream.read_to_end(buf).await?;
        }
        None => {}
    }
    let end = length.map_or(buf.len(), |l| (head_end + l).min(buf.len()));
    let message: Vec<u8> = buf.drain(..end).collect();
    Ok(Some((message, headers)))
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: &str,
    seen: &Mutex<Vec<Headers>>,
) -> std::io::Result<()> {
    let mut from_client = Vec::new();
    while let Some((request, headers)) = read_message(&mut client, &mut from_client, false).await? {
        seen.lock().unwrap().push(headers);
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&request).await?;
        let mut from_up = Vec::new();
        let Some((response, _)) = read_message(&mut up, &mut from_up, true).await? else {
            return Ok(());
        };
        client.write_all(&response).await?;
    }
    Ok(())
}
