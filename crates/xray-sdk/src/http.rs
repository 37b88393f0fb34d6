//! The SDK's own HTTP calls, blocking, on the background thread: the daemon's sampling API
//! and the ECS and EC2 metadata endpoints. Plain HTTP only (every one of them is a local or
//! link-local address), no proxy, answers read up to [`MAX_ANSWER_BYTES`].
//!
//! Built on `ureq` without its default features (no TLS, no compression). Each step of a call
//! has the client's timeout: connecting, sending, waiting for the answer's head and reading
//! its body. A dead endpoint therefore costs one timeout (a refused connection costs
//! nothing); only an endpoint that trickles its answer can take longer. Redirects are not
//! followed (none of these endpoints redirects, and following one would carry the metadata
//! token elsewhere): a 3xx answer is an error like any other.
//!
//! Host names are resolved here, on the calling thread, with the system resolver, and each
//! address is tried in turn; ureq is handed the address, with the name in the `Host` header.
//! So a call that failed knows whether it reached the endpoint at all
//! ([`HttpError::connected`]): the sampling statistics it carried are sent again only when it
//! did not.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use ureq::config::AutoHeaderValue;

/// Largest answer read: a rules list of a few hundred rules is a few hundred KiB, a metadata
/// document a few KiB; anything bigger is not an answer.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 << 20;

/// At most this many addresses of a host name are tried.
const MAX_ADDRESSES: usize = 4;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError {
    pub(crate) message: String,
    /// False only when no connection was made: nothing was sent.
    pub(crate) connected: bool,
}

impl HttpError {
    fn before_connecting(message: String) -> Self {
        HttpError {
            message,
            connected: false,
        }
    }

    fn after_connecting(message: String) -> Self {
        HttpError {
            message,
            connected: true,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The request methods the SDK uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
}

/// A blocking HTTP client (keeps idle connections for 25 s).
pub(crate) struct Client {
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client whose every step times out after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Client {
        let step = Some(timeout);
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(AutoHeaderValue::None)
            .max_idle_age(Duration::from_secs(25))
            .timeout_connect(step)
            .timeout_send_request(step)
            .timeout_send_body(step)
            .timeout_recv_response(step)
            .timeout_recv_body(step)
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// `POST url` with a JSON body: the answer's body when the status is 2xx.
    pub(crate) fn post_json(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        self.call(
            Method::Post,
            url,
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// One call: the answer's body when the status is 2xx, else why not.
    pub(crate) fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<u8>, HttpError> {
        let target = Target::parse(url)
            .ok_or_else(|| HttpError::before_connecting(format!("not an http:// URL: {url}")))?;
        let addresses = target.resolve()?;
        let mut last = None;
        for address in addresses {
            match self.call_address(method, &target, address, headers, body) {
                Err(e) if !e.connected => last = Some(e),
                done => return done,
            }
        }
        Err(last.unwrap_or_else(|| {
            HttpError::before_connecting(format!("{url}: no address for {}", target.host))
        }))
    }

    fn call_address(
        &self,
        method: Method,
        target: &Target<'_>,
        address: SocketAddr,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<u8>, HttpError> {
        let uri = format!("http://{address}{}", target.path);
        let fail = |e: ureq::Error| {
            let message = format!("http://{}{}: {e}", target.authority, target.path);
            if no_connection(&e) {
                HttpError::before_connecting(message)
            } else {
                HttpError::after_connecting(message)
            }
        };
        let result = match method {
            Method::Get => {
                let mut request = self.agent.get(&uri).header("Host", target.authority);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            Method::Post | Method::Put => {
                let mut request = if method == Method::Post {
                    self.agent.post(&uri)
                } else {
                    self.agent.put(&uri)
                }
                .header("Host", target.authority);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(body)
            }
        };
        let mut response = result.map_err(fail)?;
        let status = response.status();
        if !status.is_success() {
            return Err(HttpError::after_connecting(format!("HTTP status {status}")));
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES as u64)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    HttpError::after_connecting(format!("answer over {MAX_ANSWER_BYTES} bytes"))
                }
                e => fail(e),
            })
    }
}

/// True when the error says no connection was made (refused, unreachable, timed out while
/// connecting): the endpoint cannot have seen the request.
fn no_connection(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => true,
        ureq::Error::Io(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NetworkDown
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// The parts of an `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// `host[:port]` as written: the `Host` header.
    authority: &'a str,
    /// Without the brackets of an IPv6 address.
    host: &'a str,
    port: u16,
    /// From the first `/` or `?` on; `/` when empty.
    path: &'a str,
}

impl<'a> Target<'a> {
    fn parse(url: &'a str) -> Option<Target<'a>> {
        let scheme = url.get(..7)?;
        if !scheme.eq_ignore_ascii_case("http://") {
            return None;
        }
        let rest = &url[7..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path = path.split('#').next().unwrap_or("");
        let path = match path {
            "" => "/",
            p if p.starts_with('?') => return None,
            p => p,
        };
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            match after {
                "" => (host, 80),
                p => (host, p.strip_prefix(':')?.parse().ok()?),
            }
        } else {
            match authority.split_once(':') {
                None => (authority, 80),
                Some((host, port)) => (host, port.parse().ok()?),
            }
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if host.is_empty() || !host.chars().all(valid) {
            return None;
        }
        Some(Target {
            authority,
            host,
            port,
            path,
        })
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, HttpError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addresses = (self.host, self.port).to_socket_addrs().map_err(|e| {
            HttpError::before_connecting(format!("cannot resolve {}: {e}", self.host))
        })?;
        Ok(addresses.take(MAX_ADDRESSES).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    #[test]
    fn urls_are_parsed_or_refused() {
        let t = Target::parse("http://127.0.0.1:2000/GetSamplingRules").expect("url");
        assert_eq!(
            t,
            Target {
                authority: "127.0.0.1:2000",
                host: "127.0.0.1",
                port: 2000,
                path: "/GetSamplingRules"
            }
        );
        let t = Target::parse("HTTP://169.254.170.2").expect("url");
        assert_eq!((t.host, t.port, t.path), ("169.254.170.2", 80, "/"));
        let t = Target::parse("http://[fd00:ec2::254]/latest/api/token").expect("url");
        assert_eq!((t.host, t.port), ("fd00:ec2::254", 80));
        assert_eq!(t.authority, "[fd00:ec2::254]");
        let t = Target::parse("http://[::1]:8080/v4/x?y=1#frag").expect("url");
        assert_eq!((t.host, t.port, t.path), ("::1", 8080, "/v4/x?y=1"));
        let t = Target::parse("http://xray-daemon:2000/a").expect("url");
        assert_eq!((t.host, t.port), ("xray-daemon", 2000));
        for bad in [
            "",
            "http://",
            "https://127.0.0.1/",
            "http://user@host/",
            "http://host:99999/",
            "http://host:x/",
            "http://a:1:2/",
            "http://[::1/",
            "http://[nope]/",
            "http://[::1]x/",
            "http://ho st/",
            "http://host?x",
            "ftp://host/",
            "http:/é",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    /// Serves one connection: returns the request's head and body, answers `answer`.
    fn serve_once(answer: Vec<u8>) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("line");
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("length");
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let mut stream = reader.into_inner();
            let _ = stream.write_all(&answer);
            (head, body)
        });
        (format!("http://{addr}"), thread)
    }

    #[test]
    fn posts_json_and_reads_the_answer() {
        let (base, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}"
                .to_vec(),
        );
        let client = Client::new(Duration::from_secs(2));
        let answer = client.post_json(&format!("{base}/GetSamplingRules"), b"{}");
        assert_eq!(answer.as_deref(), Ok(&b"{\"ok\":true}"[..]));
        let (head, body) = server.join().expect("server");
        let head = head.to_ascii_lowercase();
        assert!(
            head.starts_with("post /getsamplingrules http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nhost: {}\r\n", &base[7..])),
            "{head}"
        );
        assert!(!head.contains("user-agent"), "{head}");
        assert_eq!(body, b"{}");
    }

    #[test]
    fn chunked_answers_are_read() {
        let (base, _server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
        );
        let client = Client::new(Duration::from_secs(2));
        let answer = client.call(Method::Get, &format!("{base}/x"), &[], &[]);
        assert_eq!(answer.as_deref(), Ok(&b"abcde"[..]));
    }

    #[test]
    fn errors_say_whether_the_endpoint_was_reached() {
        let client = Client::new(Duration::from_millis(500));
        // Refused: nothing was sent.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}/x", listener.local_addr().expect("addr"));
        drop(listener);
        let e = client.post_json(&dead, b"{}").expect_err("refused");
        assert!(!e.connected, "{e}");
        // Not a URL: nothing was sent.
        let e = client.post_json("https://x/", b"{}").expect_err("https");
        assert!(!e.connected, "{e}");
        // An error status, an answer too long, a connection closed without an answer: the
        // endpoint may have seen the request.
        let (base, _server) =
            serve_once(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec());
        let e = client.post_json(&base, b"{}").expect_err("500");
        assert_eq!(
            e,
            HttpError {
                message: "HTTP status 500 Internal Server Error".into(),
                connected: true
            }
        );
        let mut long = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_ANSWER_BYTES + 1
        )
        .into_bytes();
        long.resize(long.len() + MAX_ANSWER_BYTES + 1, b' ');
        let (base, _server) = serve_once(long);
        let e = client.post_json(&base, b"{}").expect_err("too long");
        assert_eq!(e.message, format!("answer over {MAX_ANSWER_BYTES} bytes"));
        assert!(e.connected);
        let (base, _server) = serve_once(Vec::new());
        let e = client.post_json(&base, b"{}").expect_err("closed");
        assert!(e.connected, "{e}");
    }

    #[test]
    fn a_silent_endpoint_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/x", listener.local_addr().expect("addr"));
        let client = Client::new(Duration::from_millis(200));
        let start = std::time::Instant::now();
        let e = client.post_json(&url, b"{}").expect_err("timeout");
        assert!(e.connected, "{e}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "{took:?}"
        );
        drop(listener);
    }
}
