//! The AWS SDK's X-Ray client, pointed at a running xray-local (plain HTTP,
//! dummy credentials: the signature is not checked, but it is sent).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use aws_sdk_xray::Client;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use aws_sdk_xray::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_xray::primitives::DateTime;
use xray_local::Server;

/// A client for `server`'s X-Ray API. No retries, so an error answer is seen
/// as it is, and every call is bounded in time.
pub fn client(server: &Server) -> Client {
    // Plain HTTP, no TLS: the connector the SDK's hyper client builds for
    // `http://` endpoints.
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_xray::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDLOCAL",
            "local-secret",
            None,
            None,
            "xray-local-tests",
        ))
        .endpoint_url(format!("http://{}", server.ui_addr()))
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Epoch seconds as the SDK's timestamp.
pub fn at(epoch: f64) -> DateTime {
    DateTime::from_secs_f64(epoch)
}
