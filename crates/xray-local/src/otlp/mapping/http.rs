//! The `http` block, from the HTTP semantic conventions (old and new names).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value as Json};

use super::Kind;
use super::attrs::Attrs;

/// Every key the `http` block reads: none of them reaches the metadata.
const CONSUMED: &[&str] = &[
    "http.method",
    "http.request.method",
    "http.client_ip",
    "client.address",
    "http.user_agent",
    "user_agent.original",
    "http.status_code",
    "http.response.status_code",
    "http.url",
    "url.full",
    "http.scheme",
    "url.scheme",
    "http.host",
    "http.target",
    "url.path",
    "url.query",
    "http.server_name",
    "net.host.name",
    "net.host.port",
    "server.address",
    "server.port",
    "net.peer.name",
    "net.peer.port",
    "net.peer.ip",
    "network.peer.address",
    "messaging.message_payload_size_bytes",
];

/// The response status: `http.status_code`, else `http.response.status_code`.
pub(super) fn status_code(attrs: &Attrs<'_>) -> Option<i64> {
    attrs
        .int("http.status_code")
        .or_else(|| attrs.int("http.response.status_code"))
}

fn valid_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// The `http` block, or `None` when the span has no HTTP attribute. Marks
/// the keys it reads in `consumed`.
pub(super) fn build<'a>(
    kind: Kind,
    attrs: &Attrs<'a>,
    events_payload: Option<i64>,
    consumed: &mut BTreeSet<&'a str>,
) -> Option<Json> {
    for (k, _) in attrs.iter() {
        if CONSUMED.contains(&k) {
            consumed.insert(k);
        }
    }
    let has_http = attrs.iter().any(|(k, _)| {
        k.starts_with("http.") || k.starts_with("url.") || k == "user_agent.original"
    });
    if !has_http {
        return None;
    }
    let mut request = Map::new();
    if let Some(m) = attrs.first_str(&["http.method", "http.request.method"]) {
        request.insert("method".into(), m.into());
    }
    if let Some(url) = url(kind, attrs) {
        request.insert("url".into(), url.into());
    }
    if let Some(ua) = attrs.first_str(&["http.user_agent", "user_agent.original"]) {
        request.insert("user_agent".into(), ua.into());
    }
    let peer = ["net.peer.ip", "network.peer.address"]
        .iter()
        .find_map(|k| attrs.str(k).filter(|ip| valid_ip(ip)));
    let client_ip = attrs
        .str("http.client_ip")
        .or_else(|| attrs.str("client.address").filter(|ip| valid_ip(ip)))
        .or(peer);
    if let Some(ip) = client_ip {
        request.insert("client_ip".into(), ip.into());
        if peer.is_none() {
            request.insert("x_forwarded_for".into(), true.into());
        }
    }
    let mut response = Map::new();
    if let Some(status) = status_code(attrs) {
        response.insert("status".into(), status.into());
    }
    if let Some(len) = attrs
        .int("messaging.message_payload_size_bytes")
        .or(events_payload)
    {
        response.insert("content_length".into(), len.into());
    }
    let mut http = Map::new();
    if !request.is_empty() {
        http.insert("request".into(), request.into());
    }
    if !response.is_empty() {
        http.insert("response".into(), response.into());
    }
    (!http.is_empty()).then_some(Json::Object(http))
}

/// `http.url`/`url.full`, else put together from its parts as the
/// converter does: a server span names its own host, a client span its
/// peer's; ports 80 and 443 are left out for their schemes.
fn url(kind: Kind, attrs: &Attrs<'_>) -> Option<String> {
    if let Some(full) = attrs.first_str(&["http.url", "url.full"]) {
        return Some(full.to_string());
    }
    let scheme = attrs
        .first_str(&["http.scheme", "url.scheme"])
        .unwrap_or("http");
    let (host, port) = match attrs.str("http.host") {
        Some(h) => (Some(h.to_string()), None),
        None if kind == Kind::Server => (
            attrs
                .first_str(&[
                    "http.server_name",
                    "net.host.name",
                    "host.name",
                    "server.address",
                ])
                .map(str::to_string),
            attrs
                .text("net.host.port")
                .or_else(|| attrs.text("server.port")),
        ),
        None => (
            attrs
                .first_str(&["net.peer.name", "net.peer.ip"])
                .map(str::to_string),
            attrs.text("net.peer.port"),
        ),
    };
    let target = match attrs.str("http.target") {
        Some(t) => Some(t.to_string()),
        None => attrs.str("url.path").map(|p| match attrs.str("url.query") {
            Some(q) => format!("{p}?{q}"),
            None => p.to_string(),
        }),
    };
    if host.is_none() && target.is_none() {
        return None;
    }
    let mut url = format!("{scheme}://{}", host.unwrap_or_default());
    if let Some(port) =
        port.filter(|p| !(scheme == "http" && p == "80" || scheme == "https" && p == "443"))
    {
        url.push(':');
        url.push_str(&port);
    }
    url.push_str(target.as_deref().unwrap_or("/"));
    Some(url)
}
