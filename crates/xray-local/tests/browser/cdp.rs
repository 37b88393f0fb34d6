//! A minimal Chrome DevTools Protocol client for the browser tests: starts
//! headless Chromium with `--remote-debugging-port=0`, attaches to its page
//! over a WebSocket (`tungstenite`) and evaluates JavaScript there. Every wait
//! is bounded; Chromium is killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Longest wait for any single step (start-up, one answer, one condition).
const STEP: Duration = Duration::from_secs(20);

/// The Chromium process and its profile directory, both gone on drop.
struct Chromium {
    child: Child,
    profile: PathBuf,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium's helper processes may still write to the profile for a moment.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(crate) struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Uncaught exceptions reported by the page, as text.
    pub(crate) exceptions: Vec<String>,
    _chromium: Chromium,
}

impl Page {
    /// Starts Chromium with a `width`×`height` window on `about:blank`.
    pub(crate) fn launch(bin: &Path, width: u32, height: u32) -> Page {
        let profile = std::env::temp_dir().join(format!(
            "xray-local-cdp-{}-{}",
            std::process::id(),
            crate::common::entity_id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = Command::new(bin)
            .args(crate::HEADLESS_FLAGS)
            .args(["--hide-scrollbars", "--remote-debugging-port=0"])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // From here on, dropping `chromium` kills it whatever fails.
        let chromium = Chromium { child, profile };
        // Chromium writes the port it picked to DevToolsActivePort.
        let port_file = chromium.profile.join("DevToolsActivePort");
        let port: u16 = wait_some("DevToolsActivePort", || {
            std::fs::read_to_string(&port_file)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse()
                .ok()
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ws_path = wait_some("a page target", || {
            let v: Value = serde_json::from_str(&json_list(addr)?).ok()?;
            let url = v.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                .as_str()?
                .to_string();
            Some(url.split_once(&format!("127.0.0.1:{port}"))?.1.to_string())
        });
        let mut page = Page {
            ws: handshake(addr, &ws_path),
            next_id: 0,
            exceptions: Vec::new(),
            _chromium: chromium,
        };
        page.call("Page.enable", json!({}));
        page.call("Runtime.enable", json!({}));
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        page
    }

    /// Sends a command and returns its `result`; panics on a protocol error.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send to DevTools");
        let deadline = Instant::now() + STEP;
        loop {
            assert!(Instant::now() < deadline, "no answer to {method} in time");
            let text = read_message(&mut self.ws);
            let v: Value = serde_json::from_str(&text).expect("CDP message is JSON");
            if v["method"] == "Runtime.exceptionThrown" {
                let d = &v["params"]["exceptionDetails"];
                let text = d["exception"]["description"]
                    .as_str()
                    .or_else(|| d["text"].as_str())
                    .unwrap_or("?");
                self.exceptions.push(text.to_string());
            }
            if v["id"] == json!(id) {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` (awaiting a promise) and returns its JSON value.
    pub(crate) fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it is truthy (at most 20 s) and returns it.
    pub(crate) fn wait(&mut self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let v = self.eval(expr);
            if !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("") {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Loads `url` and waits for the document to be parsed.
    pub(crate) fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait(
            "the page to load",
            &format!(
                "location.href === {} && document.readyState !== 'loading'",
                json!(url)
            ),
        );
    }

    /// Real time passes in the page (the UI polls on its own timers).
    pub(crate) fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

fn wait_some<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /json/list`: DevTools keeps the connection open, so the body is read
/// by its Content-Length rather than to the end.
fn json_list(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(STEP)).ok()?;
    s.write_all(format!("GET /json/list HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let head = read_head(&mut s)?;
    let len: usize = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// The response head, up to and including the blank line.
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).ok()?;
        head.push(b[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn handshake(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect to DevTools");
    s.set_read_timeout(Some(STEP)).expect("timeout");
    // No Origin header: Chromium then accepts the connection without
    // --remote-allow-origins.
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), s).expect("handshake");
    ws
}

/// The next text message (pings are answered by the library).
fn read_message(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("read from DevTools") {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Close(_) => panic!("DevTools closed the connection"),
            _ => {}
        }
    }
}
