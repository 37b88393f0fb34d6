//! What the browser tests share: finding Chromium, one browser at a time,
//! a server with a page on it, and JavaScript for the parts of the page.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use xray_local::Config;

use crate::cdp::Page;
use crate::common::*;

pub(crate) fn chromium() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Chromium, or `None` (with the reason printed) when the tests should skip.
pub(crate) fn chromium_or_skip() -> Option<PathBuf> {
    let required = std::env::var("XRAY_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let bin = chromium();
    if bin.is_none() {
        assert!(
            !required,
            "XRAY_BROWSER_TESTS=1 but chromium is not installed"
        );
        println!(
            "skipped: chromium not installed (apt-get install chromium, or set XRAY_BROWSER_TESTS=1 to require it)"
        );
    }
    bin
}

/// One Chromium at a time: the timing-sensitive checks (polling, stale
/// answers) must not compete for two cores with another browser.
pub(crate) fn one_browser_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The flags of every headless Chromium these tests start: no sandbox (root in CI), no GPU,
/// and none of the background work that would reach the network.
pub(crate) const HEADLESS_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// A started server and a page on it, or `None` when Chromium is missing.
pub(crate) struct Ui {
    pub(crate) server: xray_local::Server,
    pub(crate) page: Page,
    lock: MutexGuard<'static, ()>,
}

impl Ui {
    pub(crate) async fn start(config: Config, width: u32, height: u32) -> Option<Ui> {
        let bin = chromium_or_skip()?;
        let server = start(config).await;
        let lock = one_browser_at_a_time();
        let page = Page::launch(&bin, width, height);
        Some(Ui { server, page, lock })
    }

    /// Opens the UI with `fragment` and waits for the first poll to render.
    pub(crate) fn open(&mut self, fragment: &str) {
        let url = format!("http://{}/{fragment}", self.server.ui_addr());
        self.page.goto(&url);
        self.page.wait(
            "the first poll",
            "document.getElementById('conn').textContent !== 'connecting…'",
        );
    }

    pub(crate) async fn finish(self) {
        let Ui { server, page, lock } = self;
        assert!(
            page.exceptions.is_empty(),
            "uncaught exceptions in the page: {:?}",
            page.exceptions
        );
        drop(page);
        drop(lock);
        server.shutdown().await;
    }
}

/// JavaScript for the waterfall row whose label is `name`.
pub(crate) fn wf_row(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('.wf-row')].find((r) => r.querySelector('.wf-label').title === {})",
        json!(name)
    )
}

/// JavaScript for the trace list row of `trace`.
pub(crate) fn list_row(trace: &str) -> String {
    format!(
        "document.querySelector('tr.trace-row[data-id={}]')",
        json!(trace)
    )
}

pub(crate) const POLL: Duration = Duration::from_millis(2_600);

/// Sets filter `field` to `value` as typing would.
pub(crate) fn type_filter(field: &str, value: &str) -> String {
    format!(
        "(() => {{ const f = document.getElementById('filters').elements[{}]; f.value = {}; \
           f.dispatchEvent(new Event('input', {{bubbles: true}})); }})()",
        json!(field),
        json!(value)
    )
}

/// JavaScript for the map node named `name`.
pub(crate) fn map_node(name: &str) -> String {
    format!(
        "document.querySelector('.map-node[data-name=' + JSON.stringify({}) + ']')",
        json!(name)
    )
}

/// Presses `key` as a keyboard would (trusted key events, Tab moves the focus).
pub(crate) fn press(page: &mut Page, key: &str) {
    let code = match key {
        "Tab" => 9,
        "Enter" => 13,
        "ArrowUp" => 38,
        "ArrowDown" => 40,
        _ => 0,
    };
    for kind in ["rawKeyDown", "keyUp"] {
        page.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}),
        );
    }
}

/// The `data-id` of the focused element, or its tag name.
pub(crate) const FOCUSED: &str =
    "document.activeElement.dataset.id || document.activeElement.tagName";

/// Saves a PNG of the whole page (not only the window) to
/// `<target dir>/<name>` and returns its path.
pub(crate) fn screenshot(page: &mut Page, name: &str) -> PathBuf {
    let v = page.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true}),
    );
    let data = v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no screenshot: {v}"));
    let png = base64_decode(data);
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());
    let path = target_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// `target/` (the parent of the test binaries' temporary directory).
pub(crate) fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Standard base64 (what the DevTools protocol sends binary data as).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Presses the left button at (x1, y), moves to (x2, y) and releases it, as
/// a mouse would (trusted events).
pub(crate) fn drag(page: &mut Page, x1: f64, x2: f64, y: f64) {
    let mouse = |page: &mut Page, kind: &str, x: f64, buttons: u32| {
        page.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1}),
        );
    };
    mouse(page, "mousePressed", x1, 1);
    for i in 1..=5 {
        mouse(page, "mouseMoved", x1 + (x2 - x1) * f64::from(i) / 5.0, 1);
    }
    mouse(page, "mouseReleased", x2, 0);
}

/// The value of `expr`, as a number.
pub(crate) fn number(page: &mut Page, expr: &str) -> f64 {
    let v: Value = page.eval(expr);
    v.as_f64().unwrap_or_else(|| panic!("{expr}: {v}"))
}

/// Waits out a poll of the page.
pub(crate) fn after_a_poll(page: &mut Page) {
    page.sleep(POLL);
}

/// Sleeps `d` on the page's clock.
pub(crate) fn pause(page: &mut Page, d: Duration) {
    page.sleep(d);
}
