//! The `http` block.

use std::borrow::Cow;

use serde::Serialize;

/// The `http.request` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpRequest {
    /// The request method (`GET`, `POST`, ...); see [`http_method`] for a copy-free value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'static, str>>,
    /// The full URL: scheme, host, port, path (and query if the caller keeps it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `User-Agent` of the request (segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's IP address (segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// True when `client_ip` came from `X-Forwarded-For` (segments).
    #[serde(skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
    /// True when the downstream service is known to be traced (subsegments).
    #[serde(skip_serializing_if = "is_false")]
    pub traced: bool,
}

/// A request method as the `http.request.method` value: upper case, and borrowed without
/// copying for the standard methods.
///
/// ```
/// use xray_sdk::model::http_method;
/// assert_eq!(http_method("GET"), "GET");
/// assert!(matches!(http_method("GET"), std::borrow::Cow::Borrowed(_)));
/// assert_eq!(http_method("purge"), "PURGE");
/// ```
pub fn http_method(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_ascii_uppercase()),
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
