//! DynamoDB for the tests: moto's endpoint, a client over plain HTTP (no TLS: moto listens
//! on loopback) with the X-Ray interceptor, and a proxy that records request headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xray_sdk_aws::XRayInterceptor;

/// moto's endpoint from `XRAY_TEST_DYNAMODB_ENDPOINT` (scripts/with-moto.sh sets it).
/// Without it: a failure under CI, a skip message otherwise.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("XRAY_TEST_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "XRAY_TEST_DYNAMODB_ENDPOINT is not set and CI is: run the tests through \
                 scripts/with-moto.sh (e.g. scripts/with-moto.sh cargo test -p xray-sdk-lambda)"
            );
            eprintln!("skipped: set XRAY_TEST_DYNAMODB_ENDPOINT (scripts/with-moto.sh)");
            None
        }
    }
}

/// An HTTP client over reqwest, plain HTTP only.
#[derive(Debug, Clone)]
struct PlainHttp(reqwest::Client);

impl HttpConnector for PlainHttp {
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
            let status = StatusCode::try_from(resp.status().as_u16())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let mut out = HttpResponse::new(status, SdkBody::from(bytes.to_vec()));
            for (k, v) in headers {
                out.headers_mut().append(k, v);
            }
            Ok(out)
        })
    }
}

impl HttpClient for PlainHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A DynamoDB client for `endpoint` with the X-Ray interceptor.
pub fn dynamodb(endpoint: &str) -> Client {
    let http = PlainHttp(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(SharedHttpClient::new(http))
        .interceptor(XRayInterceptor::new())
        .build();
    Client::from_conf(conf)
}

/// Creates `table` (hash key `pk`, a string) unless it exists.
pub async fn ensure_table(client: &Client, table: &str) {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return;
    }
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    if let Err(e) = created {
        assert!(
            e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()),
            "CreateTable: {e:?}"
        );
    }
}

/// The headers of one request, names in lower case.
pub type Headers = Vec<(String, String)>;

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An HTTP/1 proxy on 127.0.0.1 that records each request's headers and forwards it to
/// `upstream` (one upstream connection per request).
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Headers>>> = Arc::default();
        let seen_by_task = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let seen = Arc::clone(&seen_by_task);
                tokio::spawn(async move {
                    let _ = forward(client, &upstream, &seen).await;
                });
            }
        });
        RecordingProxy { endpoint, seen }
    }

    pub fn requests(&self) -> Vec<Headers> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1 message: the head, then `content-length` bytes (to EOF without one when
/// `to_eof`).
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
    Ok(Some((buf.drain(..end).collect(), headers)))
}

async fn forward(
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
