//! Loads the UI in headless Chromium and checks that the trace list, the
//! waterfall and the service map show what was sent; saves a screenshot to
//! `<target dir>/xray-local-ui.png`. The other tests drive the page over the
//! DevTools protocol (`browser/cdp.rs`) to check behaviour: selection,
//! polling, layout and error display.
//!
//! Runs when `XRAY_BROWSER_TESTS=1` (then Chromium is required) or when
//! `/usr/bin/chromium` exists; otherwise it prints why it skipped.

// The skip message must reach the person running the tests.
#![allow(clippy::print_stdout)]

// The DevTools client is only for this test binary.
#[path = "browser/cdp.rs"]
mod cdp;
mod common;
#[path = "browser/ui.rs"]
mod ui;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use ui::*;
use xray_local::Config;

/// Runs Chromium with a hard time limit and returns its stdout.
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(bin)
        .args(HEADLESS_FLAGS)
        .args(["--virtual-time-budget=8000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("poll chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_list_timeline_and_map() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };

    let server = start_default().await;
    let lock = one_browser_at_a_time();
    let mut traces = Vec::new();
    for i in 0..3 {
        let t = trace_id();
        let (a, call_b, ddb, b) = (entity_id(), entity_id(), entity_id(), entity_id());
        let t0 = now() - 1.0 + f64::from(i) * 0.1;
        let mut seg_a = segment(&t, &a, "frontend", None, t0, 0.25);
        seg_a["http"] = json!({"request": {"method": "GET", "url": "http://localhost/orders"}, "response": {"status": if i == 2 { 500 } else { 200 }}});
        seg_a["fault"] = json!(i == 2);
        seg_a["annotations"] = json!({"customer": format!("c{i}")});
        seg_a["subsegments"] = json!([
            {"name": "orders-api", "id": call_b, "namespace": "remote", "start_time": t0 + 0.01, "end_time": t0 + 0.15,
             "http": {"request": {"method": "POST", "url": "http://orders/api"}, "response": {"status": 200}}},
            {"name": "DynamoDB", "id": ddb, "namespace": "aws", "start_time": t0 + 0.16, "end_time": t0 + 0.22,
             "aws": {"operation": "Query", "table_name": "orders"}}
        ]);
        let mut seg_b = segment(&t, &b, "orders-api", Some(&call_b), t0 + 0.02, 0.12);
        seg_b["subsegments"] = json!([{"name": "SELECT orders", "id": entity_id(), "namespace": "remote",
            "start_time": t0 + 0.03, "end_time": t0 + 0.1, "sql": {"sanitized_query": "SELECT * FROM orders WHERE id = ?"}}]);
        send_doc(&server, &seg_a);
        send_doc(&server, &seg_b);
        traces.push(t);
    }
    wait_accepted(&server, 6);

    let profile = std::env::temp_dir().join(format!("xray-local-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let url = format!("http://{}/#trace={}", server.ui_addr(), traces[0]);

    let dom = run_chromium(&bin, &profile, &["--dump-dom".into()], &url);
    for t in &traces {
        assert!(
            dom.contains(&format!("data-id=\"{t}\"")),
            "trace row {t} missing from DOM:\n{dom}"
        );
    }
    assert_eq!(
        dom.matches("class=\"trace-row").count(),
        3,
        "three trace rows"
    );
    for name in ["frontend", "orders-api", "DynamoDB", "SELECT orders"] {
        assert!(
            dom.contains(&format!("title=\"{name}\"")),
            "waterfall row {name} missing"
        );
    }
    assert_eq!(
        dom.matches("class=\"wf-row").count(),
        5,
        "five waterfall rows"
    );
    for (name, class) in [
        ("client", "client"),
        ("frontend", "service"),
        ("orders-api", "service"),
        ("DynamoDB", "aws"),
    ] {
        assert!(
            dom.contains(&format!("class=\"map-node {class}\" data-name=\"{name}\"")),
            "map node {name} missing"
        );
    }
    for (from, to, n) in [
        ("client", "frontend", 3),
        ("frontend", "orders-api", 3),
        ("frontend", "DynamoDB", 3),
    ] {
        assert!(
            dom.contains(&format!(
                "data-from=\"{from}\" data-to=\"{to}\" data-count=\"{n}\""
            )),
            "map edge {from} -> {to} missing"
        );
    }
    assert!(dom.contains("live · updated"), "the page reached the API");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let shot = target.join("xray-local-ui.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,900".into(),
        ],
        &url,
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    println!("screenshot: {}", shot.display());
    let _ = std::fs::remove_dir_all(&profile);
    drop(lock);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_causes_do_not_take_down_the_timeline() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let t0 = now() - 1.0;
    let mut seg = segment(&t, &entity_id(), "frontend", None, t0, 0.5);
    seg["subsegments"] = json!([
        {"name": "bad-stack", "id": entity_id(), "start_time": t0 + 0.1, "end_time": t0 + 0.2, "fault": true,
         "cause": {"working_directory": "/srv", "exceptions": [{"type": "Boom", "message": "m", "stack": "not-an-array"}]}},
        {"name": "bad-exceptions", "id": entity_id(), "start_time": t0 + 0.2, "end_time": t0 + 0.3, "fault": true,
         "cause": {"exceptions": {"type": "Kaboom"}}},
        {"name": "no-wd", "id": entity_id(), "start_time": t0 + 0.3, "end_time": t0 + 0.4, "fault": true,
         "cause": {"exceptions": [{"type": "E", "message": "fine", "stack": [{"label": "f", "path": "a.rs", "line": 3}]}]}}
    ]);
    send_doc(&ui.server, &seg);
    wait_accepted(&ui.server, 1);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "four rows",
        "document.querySelectorAll('.wf-row').length === 4",
    );
    let details = "document.getElementById('details').textContent";

    // A stack that is not an array: shown as raw JSON, and the timeline survives the
    // next polls, which select the row again.
    ui.page.eval(&format!("{}.click()", wf_row("bad-stack")));
    let text = ui.page.eval(details);
    assert!(
        text.as_str()
            .is_some_and(|d| d.contains("Boom: m") && d.contains("\"not-an-array\"")),
        "the exception, its stack as JSON: {text}"
    );
    ui.page.sleep(POLL);
    assert_eq!(
        ui.page.eval("document.querySelectorAll('.wf-row').length"),
        json!(4),
        "timeline kept"
    );
    assert_eq!(
        ui.page.eval(&format!(
            "{}.classList.contains('selected')",
            wf_row("bad-stack")
        )),
        json!(true)
    );

    // Exceptions that are an object, not a list: raw JSON too.
    ui.page
        .eval(&format!("{}.click()", wf_row("bad-exceptions")));
    let text = ui.page.eval(details);
    assert!(
        text.as_str()
            .is_some_and(|d| d.starts_with("subsegment bad-exceptions")
                && d.contains("Cause{")
                && d.contains("Kaboom")),
        "the cause as JSON: {text}"
    );
    ui.page.sleep(POLL);
    assert_eq!(
        ui.page.eval("document.querySelectorAll('.wf-row').length"),
        json!(4),
        "timeline kept"
    );

    // A well-formed cause without working_directory: no stray "null".
    ui.page.eval(&format!("{}.click()", wf_row("no-wd")));
    let text = ui.page.eval(details);
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("E: fine") && text.contains("a.rs:3"),
        "{text}"
    );
    assert!(!text.contains("null"), "{text}");

    // Whatever else fails while showing a row leaves the timeline alone and shows
    // the row as JSON (simulated: the details view throws).
    ui.page
        .eval("window.detailsView = () => { throw new Error('simulated'); }");
    ui.page.eval(&format!("{}.click()", wf_row("frontend")));
    let text = ui.page.eval(details);
    assert!(
        text.as_str()
            .is_some_and(|d| d.contains("simulated") && d.contains("\"Name\": \"frontend\"")),
        "{text}"
    );
    ui.page.sleep(POLL);
    assert_eq!(
        ui.page.eval("document.querySelectorAll('.wf-row').length"),
        json!(4),
        "timeline kept"
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_belong_to_the_selected_trace() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let (a, b) = (trace_id(), trace_id());
    let a_seg = entity_id();
    send_doc(
        &ui.server,
        &segment(&a, &a_seg, "FrontEnd-A", None, now() - 2.0, 0.3),
    );
    send_doc(
        &ui.server,
        &segment(&b, &entity_id(), "backend-B", None, now() - 1.0, 0.2),
    );
    wait_accepted(&ui.server, 2);
    ui.open(&format!("#trace={a}"));
    ui.page.wait(
        "trace A's timeline",
        &format!("{} !== undefined", wf_row("FrontEnd-A")),
    );
    ui.page.eval(&format!("{}.click()", wf_row("FrontEnd-A")));
    // The title keeps the case of names and IDs (innerText applies text-transform).
    let title = ui
        .page
        .eval("document.querySelector('#details h3').innerText");
    assert_eq!(title, json!(format!("segment FrontEnd-A ({a_seg})")));

    // Another trace: the old details go at once, and stay gone.
    ui.page.eval(&format!("{}.click()", list_row(&b)));
    assert_eq!(
        ui.page
            .eval("document.getElementById('details').childElementCount"),
        json!(0)
    );
    ui.page.wait(
        "trace B's timeline",
        &format!("{} !== undefined", wf_row("backend-B")),
    );
    ui.page.sleep(POLL);
    assert_eq!(
        ui.page
            .eval("document.getElementById('details').childElementCount"),
        json!(0)
    );

    // A trace that cannot be loaded: no details of the previous one either.
    ui.page.eval(&format!("{}.click()", wf_row("backend-B")));
    assert!(
        ui.page
            .eval("document.getElementById('details').childElementCount")
            .as_u64()
            > Some(0)
    );
    ui.page
        .eval("location.hash = '#trace=1-00000000-000000000000000000000000'");
    ui.page.wait(
        "the error",
        "document.getElementById('timeline').textContent.includes('no such trace')",
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('details').childElementCount"),
        json!(0)
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('timeline-title').textContent"),
        json!("")
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_panel_lists_unfiled_documents_and_links_to_the_timeline() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 600).await else {
        return;
    };
    let t = trace_id();
    // A segment without a name (a problem with a link), and a document without trace_id.
    send_doc(
        &ui.server,
        &json!({"trace_id": t, "id": entity_id(), "start_time": now() - 1.0, "end_time": now()}),
    );
    send_doc(
        &ui.server,
        &json!({"id": entity_id(), "name": "lost", "start_time": now()}),
    );
    wait_accepted(&ui.server, 2);
    ui.open("");
    ui.page.wait(
        "the unfiled list",
        "document.getElementById('validation').textContent.includes('without a usable trace_id')",
    );
    let text = ui
        .page
        .eval("document.getElementById('validation').textContent");
    let text = text.as_str().unwrap_or_default();
    assert!(!text.contains("[object"), "{text}");
    assert!(text.contains("\"name\":\"lost\""), "{text}");
    assert_eq!(
        ui.page
            .eval("[...document.querySelectorAll('#validation h3')].map((h) => h.textContent)"),
        json!(["Documents without a usable trace_id"])
    );

    // The link selects the trace and scrolls its timeline into view.
    ui.page
        .eval("window.scrollTo(0, document.body.scrollHeight)");
    ui.page.eval(&format!(
        "document.querySelector('#validation a[href*={}]').click()",
        json!(t)
    ));
    ui.page.wait(
        "the timeline",
        "document.querySelectorAll('.wf-row').length === 1",
    );
    ui.page.wait(
        "the timeline in view",
        "(() => { const r = document.getElementById('timeline-panel').getBoundingClientRect(); \
          return r.top >= -1 && r.top < innerHeight / 2; })()",
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_segments_show_as_in_progress() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let seg = entity_id();
    let t0 = now() - 3.0;
    // As SDKs send it: the open segment with its finished subsegments embedded.
    send_doc(
        &ui.server,
        &json!({"trace_id": t, "id": seg, "name": "open", "start_time": t0, "in_progress": true,
                "subsegments": [{"id": entity_id(), "name": "child", "start_time": t0 + 0.2, "end_time": t0 + 0.8}]}),
    );
    wait_accepted(&ui.server, 1);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "two rows",
        "document.querySelectorAll('.wf-row').length === 2",
    );
    ui.page.eval(&format!("{}.click()", wf_row("open")));
    let line = ui
        .page
        .eval("document.querySelector('#details p').textContent");
    assert!(
        line.as_str().is_some_and(|l| l.starts_with("in progress")),
        "{line}"
    );
    // The trace lasts until its finished child ends, in the list and the timeline.
    let duration = ui
        .page
        .eval(&format!("{}.cells[2].textContent", list_row(&t)));
    assert_eq!(duration, json!("800 ms"));
    let title = ui
        .page
        .eval("document.getElementById('timeline-title').textContent");
    assert!(
        title.as_str().is_some_and(|l| l.contains("800 ms")),
        "{title}"
    );
    // The child's bar ends at the end of the axis.
    let end = ui.page.eval(&format!(
        "(() => {{ const b = {}.querySelector('.wf-bar').getBoundingClientRect(); \
           const t = document.querySelector('.wf-track').getBoundingClientRect(); \
           return Math.round(t.right - b.right); }})()",
        wf_row("child")
    ));
    assert_eq!(end, json!(0));
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_of_deep_traces_start_at_the_right_time() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let t0 = now() - 5.0;
    // 45 nested subsegments, the i-th starting at i/50 of the trace (names without
    // digits: the depth shown is the only number in a label).
    let mut sub = json!(null);
    for i in (1..=45).rev() {
        let s = t0 + f64::from(i) * 0.02;
        let mut v =
            json!({"name": "nested", "id": entity_id(), "start_time": s, "end_time": s + 0.02});
        if !sub.is_null() {
            v["subsegments"] = json!([sub]);
        }
        sub = v;
    }
    let mut seg = segment(&t, &entity_id(), "deep", None, t0, 1.0);
    seg["subsegments"] = json!([sub]);
    send_doc(&ui.server, &seg);
    wait_accepted(&ui.server, 1);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "46 rows",
        "document.querySelectorAll('.wf-row').length === 46",
    );
    let rows = ui.page.eval(
        "[...document.querySelectorAll('.wf-row')].map((r) => { \
           const t = r.querySelector('.wf-track').getBoundingClientRect(); \
           const b = r.querySelector('.wf-bar').getBoundingClientRect(); \
           return [t.left, t.width, b.left, r.querySelector('.wf-label').textContent]; })",
    );
    let rows = rows.as_array().expect("rows");
    let axis = ui.page.eval("(() => { const a = document.querySelector('.wf-axis').getBoundingClientRect(); return [a.left, a.width]; })()");
    let (left, width) = (
        axis[0].as_f64().unwrap_or(0.0),
        axis[1].as_f64().unwrap_or(0.0),
    );
    assert!(width > 300.0, "{axis}");
    for (i, r) in rows.iter().enumerate() {
        let f = |k: usize| r[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            (f(0) - left).abs() < 1.0 && (f(1) - width).abs() < 1.0,
            "row {i}: track {r} vs axis {axis}"
        );
        let want = left + width * i as f64 * 0.02;
        assert!(
            (f(2) - want).abs() < 2.0,
            "row {i}: bar at {} px, want {want}",
            f(2)
        );
    }
    // Rows deeper than the indentation shows still tell their depth.
    assert_eq!(rows[5][3], json!("nested"));
    let label = rows[40][3].as_str().unwrap_or_default();
    assert!(label.contains("40"), "{label}");
    // Duration labels next to bars ending near the right edge sit left of the bar.
    let placement = ui.page.eval(
        "(() => { const r = document.querySelectorAll('.wf-row')[45]; \
           const b = r.querySelector('.wf-bar').getBoundingClientRect(); \
           const d = r.querySelector('.wf-dur').getBoundingClientRect(); \
           return [Math.round(d.right - b.left), Math.round(b.right)]; })()",
    );
    assert!(
        placement[0].as_f64().is_some_and(|x| x <= 0.0),
        "{placement}"
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_errors_show_at_the_filters_and_stale_answers_are_ignored() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    for (i, name) in ["web", "api"].iter().enumerate() {
        let mut s = segment(&trace_id(), &entity_id(), name, None, now() - 1.0, 0.1);
        s["annotations"] = json!({"customer": format!("c{i}")});
        send_doc(&ui.server, &s);
    }
    wait_accepted(&ui.server, 2);
    ui.open("");
    ui.page.wait(
        "two traces",
        "document.querySelectorAll('tr.trace-row').length === 2",
    );

    // A filter the API rejects: the message is next to the filters, the connection is
    // fine and the list does not pretend to be filtered.
    ui.page.eval(&type_filter("annotation", "==acme"));
    let msg = ui.page.wait(
        "the filter error",
        "document.getElementById('filter-error').textContent",
    );
    assert!(
        msg.as_str().is_some_and(|m| m.contains("annotation")),
        "{msg}"
    );
    ui.page.sleep(POLL);
    let conn = ui.page.eval("document.getElementById('conn').className + ' ' + document.getElementById('conn').textContent");
    assert!(
        conn.as_str()
            .is_some_and(|c| c.contains("live") && !c.contains("down")),
        "{conn}"
    );
    assert_eq!(
        ui.page
            .eval("document.querySelectorAll('tr.trace-row').length"),
        json!(0)
    );
    ui.page.eval(&type_filter("annotation", "customer=c1"));
    ui.page.wait(
        "one trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('filter-error').textContent"),
        json!("")
    );
    ui.page.eval(&type_filter("annotation", ""));
    ui.page.wait(
        "two traces",
        "document.querySelectorAll('tr.trace-row').length === 2",
    );

    // An answer to an older keystroke that arrives last is not shown: hold back the
    // answers for service=slow, and log every state of the list.
    ui.page.eval(
        "window.__realFetch = window.fetch; \
         window.fetch = (url, opts) => String(url).includes('service=slow') \
           ? new Promise((ok) => setTimeout(ok, 1200)).then(() => window.__realFetch(url, opts)) \
           : window.__realFetch(url, opts); \
         window.__lists = []; \
         new MutationObserver(() => window.__lists.push(document.querySelector('#traces tbody').textContent)) \
           .observe(document.querySelector('#traces tbody'), {childList: true, subtree: true, characterData: true});",
    );
    ui.page.eval(&type_filter("service", "slow"));
    ui.page.eval(&type_filter("service", "web"));
    ui.page.wait(
        "the web trace alone",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    ui.page.sleep(Duration::from_millis(2_000));
    let lists = ui.page.eval("window.__lists");
    let lists = lists.as_array().expect("log");
    let first_web = lists
        .iter()
        .position(|l| l.as_str().is_some_and(|l| l.contains("web")));
    assert!(first_web.is_some(), "{lists:?}");
    assert!(
        lists[first_web.unwrap_or(0)..]
            .iter()
            .all(|l| l.as_str().is_some_and(|l| l.contains("web"))),
        "a stale answer was shown: {lists:?}"
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_leaves_unchanged_panels_and_settled_timelines_alone() {
    let config = Config {
        settle: Duration::from_millis(300),
        ..Config::ephemeral()
    };
    let Some(mut ui) = Ui::start(config, 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let seg = entity_id();
    let mut s = segment(&t, &seg, "frontend", None, now() - 1.0, 0.5);
    s["metadata"] = json!({"default": {"note": "select me"}});
    send_doc(&ui.server, &s);
    wait_accepted(&ui.server, 1);
    wait_for("the trace to settle", || {
        (timeline(&ui.server, &t)["Settled"] == json!(true)).then_some(())
    });
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "the timeline",
        &format!("{} !== undefined", wf_row("frontend")),
    );
    ui.page.eval(&format!("{}.click()", wf_row("frontend")));
    // The first node each panel renders.
    ui.page.eval(
        "window.__panels = ['#details > *', '#timeline > *', '#traces tbody > *', '#map > *', \
           '#intake > *', '#validation > *', '#histogram > *', '#rules > *', '#service-counts > *'];",
    );
    // Mark today's nodes, open the metadata tab (which re-renders nothing), select
    // text in it, and count timeline requests.
    ui.page.eval(
        "for (const sel of window.__panels) document.querySelector(sel).__kept = true; \
         document.querySelector('#details [data-tab=metadata]').click(); \
         getSelection().selectAllChildren(document.querySelector('#details [data-panel=metadata] pre')); \
         window.__timelineFetches = 0; window.__realFetch = window.fetch; \
         window.fetch = (url, opts) => { if (String(url).includes('/api/Timeline')) window.__timelineFetches++; \
           return window.__realFetch(url, opts); };",
    );
    ui.page.sleep(POLL + POLL);
    let kept = ui
        .page
        .eval("window.__panels.filter((sel) => !document.querySelector(sel).__kept)");
    assert_eq!(kept, json!([]), "panels re-rendered without a change");
    assert!(
        ui.page
            .eval("getSelection().toString()")
            .as_str()
            .is_some_and(|s| s.contains("select me"))
    );
    assert_eq!(
        ui.page.eval("window.__timelineFetches"),
        json!(0),
        "settled timeline fetched again"
    );

    // New data for the trace: its timeline is fetched again; the details, whose row
    // did not change, stay as they are.
    send_doc(
        &ui.server,
        &streamed(&t, &entity_id(), &seg, "late", now() - 0.8, 0.1),
    );
    ui.page
        .wait("the new row", &format!("{} !== undefined", wf_row("late")));
    assert_eq!(
        ui.page
            .eval("document.querySelector('#details *').__kept === true"),
        json!(true)
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_windows_get_one_column_with_the_list_first() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 800, 900).await else {
        return;
    };
    send_doc(
        &ui.server,
        &segment(&trace_id(), &entity_id(), "web", None, now() - 1.0, 0.1),
    );
    wait_accepted(&ui.server, 1);
    ui.open("");
    ui.page.wait(
        "the trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    let boxes = ui.page.eval(
        "['list-panel', 'timeline-panel', 'map-panel', 'intake-panel', 'validation-panel'].map((id) => { \
           const r = document.getElementById(id).getBoundingClientRect(); return [r.top, r.left, r.width]; })",
    );
    let boxes = boxes.as_array().expect("boxes");
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b[1], boxes[0][1], "panel {i} in one column: {boxes:?}");
        assert_eq!(b[2], boxes[0][2], "panel {i} full width: {boxes:?}");
        if i > 0 {
            assert!(
                b[0].as_f64() > boxes[i - 1][0].as_f64(),
                "panel order: {boxes:?}"
            );
        }
    }
    assert_eq!(
        ui.page
            .eval("document.documentElement.scrollWidth <= innerWidth"),
        json!(true)
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_list_shows_status_dates_and_full_texts() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let (today, old) = (trace_id(), trace_id());
    let url = format!("http://localhost/orders/{}", "x".repeat(120));
    let mut s = segment(&today, &entity_id(), "frontend", None, now() - 1.0, 0.1);
    s["http"] = json!({"request": {"method": "GET", "url": url}, "response": {"status": 503}});
    send_doc(&ui.server, &s);
    send_doc(
        &ui.server,
        &segment(
            &old,
            &entity_id(),
            "batch",
            None,
            now() - 3.0 * 86_400.0,
            0.1,
        ),
    );
    wait_accepted(&ui.server, 2);
    ui.open("");
    ui.page.wait(
        "two traces",
        "document.querySelectorAll('tr.trace-row').length === 2",
    );
    let cells = |t: &str, ui: &mut Ui| -> Value {
        ui.page.eval(&format!(
            "[...{}.cells].map((c) => [c.textContent, c.title])",
            list_row(t)
        ))
    };
    let row = cells(&today, &mut ui);
    let text = row.to_string();
    assert!(text.contains("\"503\""), "{row}");
    let time = row[0][0].as_str().unwrap_or_default();
    assert!(
        time.len() == 8 && time.matches(':').count() == 2,
        "time with seconds: {row}"
    );
    assert_eq!(row[1][1], json!(format!("frontend GET {url}")), "{row}");
    assert_eq!(row[5][1], json!("frontend"), "{row}");
    let row = cells(&old, &mut ui);
    let time = row[0][0].as_str().unwrap_or_default();
    assert!(
        time.len() == 19 && time.as_bytes()[4] == b'-' && time.as_bytes()[13] == b':',
        "date and time: {row}"
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_list_tells_where_to_send_segments() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    ui.open("");
    let udp = ui.server.udp_addr().to_string();
    let text = ui.page.wait(
        "the empty state",
        "document.querySelector('#traces tbody').textContent",
    );
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("No traces received yet") && text.contains(&udp),
        "{text}"
    );
    // With traces stored, a filter matching none says so.
    send_doc(
        &ui.server,
        &segment(&trace_id(), &entity_id(), "web", None, now() - 1.0, 0.1),
    );
    ui.page.wait(
        "the trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    ui.page.eval(&type_filter("service", "nothing-like-it"));
    ui.page.wait(
        "no match",
        "document.querySelector('#traces tbody').textContent === 'No traces match.'",
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_segments_nest_under_their_call_and_show_clock_skew() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let (call, other) = (entity_id(), entity_id());
    let t0 = now() - 2.0;
    let mut front = segment(&t, &entity_id(), "front", None, t0, 1.0);
    front["subsegments"] = json!([
        {"name": "call-api", "id": call, "start_time": t0 + 0.1, "end_time": t0 + 0.3},
        {"name": "call-other", "id": other, "start_time": t0 + 0.4, "end_time": t0 + 0.6}
    ]);
    send_doc(&ui.server, &front);
    // Starts 50 ms before its call: the other host's clock is behind.
    send_doc(
        &ui.server,
        &segment(&t, &entity_id(), "api", Some(&call), t0 + 0.05, 0.2),
    );
    send_doc(
        &ui.server,
        &segment(&t, &entity_id(), "other", Some(&other), t0 + 0.45, 0.1),
    );
    wait_accepted(&ui.server, 3);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "five rows",
        "document.querySelectorAll('.wf-row').length === 5",
    );
    let rows = ui.page.eval(
        "[...document.querySelectorAll('.wf-row')].map((r) => [r.querySelector('.wf-label').title, r.dataset.depth, \
           (r.querySelector('.wf-skew') || {}).textContent || ''])",
    );
    assert_eq!(
        rows,
        json!([
            ["front", "0", ""],
            ["call-api", "1", ""],
            ["api", "2", "possible clock skew"],
            ["call-other", "1", ""],
            ["other", "2", ""]
        ])
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_service_maps_stay_in_their_panel_and_nodes_filter_the_list() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t0 = now() - 2.0;
    // One trace calling 300 distinct remote hosts: 300 nodes in one column.
    let mut big = segment(&trace_id(), &entity_id(), "fanout", None, t0, 1.0);
    big["subsegments"] = (0..300)
        .map(|i| {
            json!({"name": format!("host-{i:03}"), "id": entity_id(), "namespace": "remote",
                        "start_time": t0 + 0.1, "end_time": t0 + 0.2})
        })
        .collect();
    send_doc(&ui.server, &big);
    // Two front ends whose callees sort the other way round by name: in name order
    // their edges cross.
    for (front, back) in [("a-front", "z-back"), ("b-front", "a-back")] {
        let t = trace_id();
        let call = entity_id();
        let mut s = segment(&t, &entity_id(), front, None, t0, 0.5);
        s["subsegments"] =
            json!([{"name": back, "id": call, "start_time": t0 + 0.1, "end_time": t0 + 0.3}]);
        send_doc(&ui.server, &s);
        send_doc(
            &ui.server,
            &segment(&t, &entity_id(), back, Some(&call), t0 + 0.11, 0.1),
        );
    }
    // Throttled calls only.
    let mut slow = segment(&trace_id(), &entity_id(), "throttled", None, t0, 0.1);
    slow["error"] = json!(true);
    slow["throttle"] = json!(true);
    slow["http"] = json!({"response": {"status": 429}});
    send_doc(&ui.server, &slow);
    wait_accepted(&ui.server, 6);
    ui.open("");
    ui.page.wait(
        "the map",
        "document.querySelectorAll('.map-node').length === 307",
    );
    ui.page.wait(
        "four traces",
        "document.querySelectorAll('tr.trace-row').length === 4",
    );
    let boxes = ui.page.eval(
        "['map-panel', 'list-panel'].map((id) => document.getElementById(id).getBoundingClientRect()) \
           .map((r) => [r.top, r.height])",
    );
    let f = |i: usize, k: usize| boxes[i][k].as_f64().unwrap_or(f64::NAN);
    assert!(f(0, 1) < 600.0, "map panel height: {boxes}");
    assert!(
        f(1, 0) < 900.0 - 100.0,
        "trace list in the first screen: {boxes}"
    );

    // Callees follow their callers' order.
    let y = |ui: &mut Ui, name: &str| {
        ui.page
            .eval(&format!("{}.getBoundingClientRect().top", map_node(name)))
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert!(y(&mut ui, "a-front") < y(&mut ui, "b-front"));
    assert!(
        y(&mut ui, "z-back") < y(&mut ui, "a-back"),
        "z-back is called by a-front, which is above b-front"
    );

    // Throttles have a colour of their own.
    let edge = ui.page.eval(
        "document.querySelector('.map-edge[data-from=\"client\"][data-to=\"throttled\"]').getAttribute('class')",
    );
    assert_eq!(edge, json!("map-edge throttle"));
    assert_eq!(
        ui.page.eval(&format!(
            "{}.querySelector('.ring').getAttribute('class')",
            map_node("throttled")
        )),
        json!("ring throttle")
    );

    // A click on a node filters the list by it; so does Enter on a focused node.
    ui.page.eval(&format!(
        "{}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))",
        map_node("b-front")
    ));
    ui.page.wait(
        "the b-front trace alone",
        "document.querySelectorAll('tr.trace-row').length === 1 && \
         document.querySelector('tr.trace-row').textContent.includes('b-front')",
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('filters').elements.service.value"),
        json!("b-front")
    );
    ui.page.eval(&format!(
        "{0}.focus(); {0}.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}}))",
        map_node("fanout")
    ));
    ui.page.wait(
        "the fanout trace alone",
        "document.querySelectorAll('tr.trace-row').length === 1 && \
         document.querySelector('tr.trace-row').textContent.includes('fanout')",
    );
    assert_eq!(
        ui.page.eval(&format!(
            "[{0}.tabIndex, document.activeElement === {0}]",
            map_node("fanout")
        )),
        json!([0, true])
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_reachable_and_selectable_with_the_keyboard() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    // Newest first in the list: c, b, a.
    let ids: Vec<String> = (0..3).map(|_| trace_id()).collect();
    let mut segs = Vec::new();
    for (i, t) in ids.iter().enumerate() {
        let seg = entity_id();
        let t0 = now() - 3.0 + i as f64;
        let mut s = segment(t, &seg, &format!("svc-{i}"), None, t0, 0.5);
        s["subsegments"] = json!([{"name": "first", "id": entity_id(), "start_time": t0 + 0.1, "end_time": t0 + 0.2},
                                  {"name": "second", "id": entity_id(), "start_time": t0 + 0.2, "end_time": t0 + 0.3}]);
        send_doc(&ui.server, &s);
        segs.push(seg);
    }
    wait_accepted(&ui.server, 3);
    ui.open(&format!("#trace={}", ids[2]));
    ui.page.wait(
        "three traces",
        "document.querySelectorAll('tr.trace-row').length === 3",
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('conn').getAttribute('aria-live')"),
        json!("polite")
    );
    assert_eq!(
        ui.page.eval(&format!(
            "{}.getAttribute('aria-selected')",
            list_row(&ids[2])
        )),
        json!("true")
    );
    // Tab from the last filter control passes the map nodes and the timeline
    // rows, then reaches the first trace row.
    ui.page.eval("document.getElementById('clear').focus()");
    let mut reached = false;
    for _ in 0..40 {
        press(&mut ui.page, "Tab");
        if ui.page.eval(FOCUSED) == json!(ids[2]) {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the first trace row");
    press(&mut ui.page, "ArrowDown");
    assert_eq!(ui.page.eval(FOCUSED), json!(ids[1]));
    press(&mut ui.page, "Enter");
    ui.page.wait(
        "trace b selected",
        &format!(
            "{}.getAttribute('aria-selected') === 'true' && location.hash.includes({})",
            list_row(&ids[1]),
            json!(ids[1])
        ),
    );
    assert_eq!(
        ui.page.eval(&format!(
            "{}.getAttribute('aria-selected')",
            list_row(&ids[2])
        )),
        json!("false")
    );
    ui.page.wait(
        "trace b's timeline",
        &format!("{} !== undefined", wf_row("svc-1")),
    );

    // Timeline rows: focus, arrows, Enter shows the row's details.
    ui.page.eval(&format!("{}.focus()", wf_row("svc-1")));
    assert_eq!(ui.page.eval(FOCUSED), json!(segs[1]));
    press(&mut ui.page, "ArrowDown");
    press(&mut ui.page, "ArrowDown");
    press(&mut ui.page, "ArrowUp");
    press(&mut ui.page, "Enter");
    let title = ui
        .page
        .eval("document.querySelector('#details h3').textContent");
    assert!(
        title
            .as_str()
            .is_some_and(|t| t.starts_with("subsegment first")),
        "{title}"
    );
    assert_eq!(
        ui.page.eval(&format!(
            "{}.getAttribute('aria-selected')",
            wf_row("first")
        )),
        json!("true")
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_badges_have_enough_contrast() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    ui.open("");
    // WCAG contrast of each badge's text on its background.
    let ratios = ui.page.eval(
        "(() => { \
           const lum = (c) => { const [r, g, b] = c.match(/\\d+/g).slice(0, 3).map((v) => { v /= 255; \
             return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); \
             return 0.2126 * r + 0.7152 * g + 0.0722 * b; }; \
           return ['', 'error', 'fault', 'throttle', 'partial', 'problem'].map((k) => { \
             const b = document.createElement('span'); b.className = 'badge ' + k; document.body.append(b); \
             const s = getComputedStyle(b); const [x, y] = [lum(s.color), lum(s.backgroundColor)]; \
             b.remove(); return [k, (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05)]; }); })()",
    );
    for r in ratios.as_array().expect("ratios") {
        assert!(r[1].as_f64().is_some_and(|c| c >= 4.5), "{ratios}");
    }
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_labels_show_operation_status_and_a_status_mark() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t = trace_id();
    let t0 = now() - 2.0;
    let mut seg = segment(&t, &entity_id(), "front", None, t0, 1.0);
    seg["subsegments"] = json!([
        {"name": "DynamoDB", "id": entity_id(), "namespace": "aws", "start_time": t0 + 0.1, "end_time": t0 + 0.2,
         "error": true, "aws": {"operation": "PutItem"}, "http": {"response": {"status": 400}}},
        {"name": "api", "id": entity_id(), "namespace": "remote", "start_time": t0 + 0.2, "end_time": t0 + 0.3,
         "fault": true, "http": {"request": {"method": "POST"}, "response": {"status": 503}}},
        {"name": "SQS", "id": entity_id(), "namespace": "aws", "start_time": t0 + 0.3, "end_time": t0 + 0.4,
         "error": true, "throttle": true, "aws": {"operation": "SendMessage"}, "http": {"response": {"status": 429}}},
        // Not strings or numbers: not shown.
        {"name": "odd", "id": entity_id(), "start_time": t0 + 0.4, "end_time": t0 + 0.5,
         "aws": {"operation": {"x": 1}}, "http": {"request": {"method": ["GET"]}}}
    ]);
    send_doc(&ui.server, &seg);
    wait_accepted(&ui.server, 1);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "five rows",
        "document.querySelectorAll('.wf-row').length === 5",
    );
    let labels = ui.page.eval(
        "[...document.querySelectorAll('.wf-label')].map((l) => [l.textContent, \
           (l.querySelector('.wf-status') || {}).textContent || ''])",
    );
    assert_eq!(
        labels,
        json!([
            ["front", ""],
            ["! errorDynamoDBPutItem 400aws", "! error"],
            ["✕ faultapiPOST 503remote", "✕ fault"],
            ["⏸ throttleSQSSendMessage 429aws", "⏸ throttle"],
            ["odd", ""]
        ])
    );
    ui.finish().await;
}
