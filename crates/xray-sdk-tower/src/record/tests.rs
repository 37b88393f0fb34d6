use super::*;

#[test]
fn response_header_values() {
    let id = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793").unwrap();
    assert_eq!(
        response_header_value(id, None).unwrap(),
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(
        response_header_value(id, Some(true)).unwrap(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );
    assert_eq!(
        response_header_value(id, Some(false)).unwrap(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"
    );
}

#[test]
fn first_headers_match_hashed_look_ups() {
    let mut headers = HeaderMap::new();
    assert_eq!(
        FirstHeaders::find(&headers),
        FirstHeaders {
            scanned: true,
            ..FirstHeaders::default()
        }
    );
    headers.insert(header::HOST, HeaderValue::from_static("a.example.com"));
    headers.append(header::HOST, HeaderValue::from_static("b.example.com"));
    let scanned = FirstHeaders::find(&headers);
    assert_eq!((scanned.xray, scanned.traceparent), (None, None));
    assert_eq!(scanned.host.unwrap(), "a.example.com");
    headers.append(TRACEPARENT_HEADER, HeaderValue::from_static("tp-1"));
    headers.append(TRACEPARENT_HEADER, HeaderValue::from_static("tp-2"));
    headers.append(TRACE_HEADER, HeaderValue::from_static("Root=1"));
    headers.append(TRACE_HEADER, HeaderValue::from_static("Root=2"));
    let expected = |h: &HeaderMap| {
        (
            h.get(TRACE_HEADER).cloned(),
            h.get(TRACEPARENT_HEADER).cloned(),
            h.get(header::HOST).cloned(),
        )
    };
    let found = |h: &HeaderMap| {
        let f = FirstHeaders::find(h);
        (f.xray.cloned(), f.traceparent.cloned(), f.host.cloned())
    };
    assert_eq!(found(&headers), expected(&headers));
    assert_eq!(found(&headers).0.unwrap(), "Root=1");
    assert_eq!(found(&headers).1.unwrap(), "tp-1");
    // Past the scan limit, the hashed look-ups answer the same.
    for i in 0..=SCAN_LIMIT {
        let name = HeaderName::try_from(format!("x-filler-{i}")).unwrap();
        headers.insert(name, HeaderValue::from_static("x"));
    }
    assert!(headers.keys_len() > SCAN_LIMIT);
    assert_eq!(found(&headers), expected(&headers));
    // The headers of the request block are then searched for only if it is recorded.
    assert_eq!(FirstHeaders::find(&headers).request(), None);
    headers.remove(TRACEPARENT_HEADER);
    headers.remove(header::HOST);
    assert_eq!(
        found(&headers),
        (Some(HeaderValue::from_static("Root=1")), None, None)
    );
}

/// The URL as it is recorded.
fn url_string(url: &Url<'_>) -> String {
    match url {
        Url::Parts { https, host, path } => {
            format!("{}://{host}{path}", if *https { "https" } else { "http" })
        }
        Url::Built(s) => s.clone(),
        Url::Path(p) => (*p).to_owned(),
    }
}

#[test]
fn request_urls() {
    let url = |req: Request<()>| {
        let found = FirstHeaders::find(req.headers());
        let host = host(&req, found.host);
        let url = url_string(&request_block(&req, host, found.request()).url);
        // The same when the headers are searched again (a request with many headers).
        assert_eq!(url, url_string(&request_block(&req, host, None).url));
        url
    };
    let get = |uri: &str| Request::get(uri);
    assert_eq!(
        url(get("/a?q=1")
            .header("host", "api.example.com")
            .body(())
            .unwrap()),
        "http://api.example.com/a"
    );
    assert_eq!(
        url(get("/a")
            .header("host", "api.example.com")
            .header("x-forwarded-proto", "HTTPS, http")
            .body(())
            .unwrap()),
        "https://api.example.com/a"
    );
    assert_eq!(
        url(get("/a")
            .header("host", "api.example.com")
            .header("x-forwarded-proto", "gopher")
            .body(())
            .unwrap()),
        "http://api.example.com/a"
    );
    assert_eq!(
        url(get("HTTPS://svc.internal:8443/b").body(()).unwrap()),
        "https://svc.internal:8443/b"
    );
    assert_eq!(url(get("/c").body(()).unwrap()), "/c");
    // Credentials in an absolute-form request line are never recorded.
    assert_eq!(
        url(get("http://user:secret@svc.internal:8080/d")
            .body(())
            .unwrap()),
        "http://svc.internal:8080/d"
    );
    // An empty `Host` header falls back to the request line's authority.
    assert_eq!(
        url(get("http://svc.internal/e")
            .header("host", "")
            .body(())
            .unwrap()),
        "http://svc.internal/e"
    );
}

#[test]
fn request_headers_first_values() {
    let req = Request::get("/a")
        .header("host", "api.example.com")
        .header("user-agent", "curl/8.5.0")
        .header("User-Agent", "second")
        .header("x-forwarded-for", " 203.0.113.7 , 10.0.0.1")
        .header("accept", "*/*")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-proto", "http")
        .body(())
        .unwrap();
    let found = FirstHeaders::find(req.headers());
    assert_eq!(found.request(), Some(RequestHeaders::find(req.headers())));
    let host = host(&req, found.host);
    for block in [
        request_block(&req, host, found.request()),
        request_block(&req, host, None),
    ] {
        assert_eq!(block.client_ip.as_deref(), Some("203.0.113.7"));
        assert!(block.x_forwarded_for);
        assert_eq!(url_string(&block.url), "https://api.example.com/a");
        assert_eq!(block.user_agent, Some("curl/8.5.0"));
    }

    // An empty first element is no address: the peer's (none here) is used instead.
    let req = Request::get("/a")
        .header("x-forwarded-for", ", 10.0.0.1")
        .body(())
        .unwrap();
    let block = request_block(&req, None, FirstHeaders::find(req.headers()).request());
    assert_eq!(block.client_ip, None);
    assert!(!block.x_forwarded_for);
    assert_eq!(block.user_agent, None);
}

#[test]
fn method_names_are_the_core_s() {
    let standard = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    for (method, borrowed) in standard
        .iter()
        .map(|m| (*m, true))
        .chain([("PURGE", false), ("purge", false)])
    {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let name = method_name(&method);
        assert_eq!(name, xray_sdk::model::http_method(method.as_str()));
        assert_eq!(matches!(name, Cow::Borrowed(_)), borrowed, "{method}");
    }
}
