//! The viewer's console features in headless Chromium: the filter
//! expression box, the response-time histogram, node and edge details, edge
//! labels, the details tabs and raw JSON, live tail, the sampling rules
//! editor, requests seen and sampled per service, the trace list's paths,
//! sorting, paging, ID search and downstream marker, and NDJSON export and
//! import. Screenshots go to `<target dir>/xray-local-*.png`.
//!
//! Runs when `XRAY_BROWSER_TESTS=1` (then Chromium is required) or when
//! `/usr/bin/chromium` exists; otherwise it prints why it skipped.

// The skip message and the screenshot paths must reach the person running the tests.
#![allow(clippy::print_stdout)]

#[path = "browser/cdp.rs"]
mod cdp;
mod common;
#[path = "browser/ui.rs"]
mod ui;

use std::net::UdpSocket;

use common::*;
use serde_json::{Value, json};
use ui::*;
use xray_local::Config;

/// One request of the demo's shape: `xray-demo-bff` (the root, answering
/// `status`) calls `backend1` and `backend2` (which faults when asked), each
/// writing to DynamoDB. Returns the trace ID.
fn demo_trace(
    server: &xray_local::Server,
    t0: f64,
    rt: f64,
    status: u16,
    b2_fault: bool,
    path: &str,
) -> String {
    let t = trace_id();
    let (bff, c1, c2, s1, s2) = (
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
    );
    let mut root = segment(&t, &bff, "xray-demo-bff", None, t0, rt);
    root["http"] = json!({"request": {"method": "GET", "url": format!("http://127.0.0.1:3000{path}"),
        "client_ip": "127.0.0.1"}, "response": {"status": status}});
    root["fault"] = json!(status >= 500);
    root["annotations"] = json!({"customer": "c-1"});
    root["subsegments"] = json!([
        {"name": "backend1", "id": c1, "namespace": "remote", "start_time": t0 + 0.001, "end_time": t0 + rt * 0.4,
         "http": {"request": {"method": "GET", "url": "http://127.0.0.1:3001/date"}, "response": {"status": 200}}},
        {"name": "backend2", "id": c2, "namespace": "remote", "start_time": t0 + rt * 0.45, "end_time": t0 + rt * 0.9,
         "fault": b2_fault,
         "http": {"request": {"method": "GET", "url": "http://127.0.0.1:3002/time"},
                  "response": {"status": if b2_fault { 500 } else { 200 }}}}
    ]);
    send_doc(server, &root);
    for (id, name, call, start, end, fault) in [
        (s1, "backend1", c1, t0 + 0.002, t0 + rt * 0.38, false),
        (s2, "backend2", c2, t0 + rt * 0.46, t0 + rt * 0.88, b2_fault),
    ] {
        let mut s = segment(&t, &id, name, Some(&call), start, end - start);
        s["fault"] = json!(fault);
        s["subsegments"] = json!([{"name": "DynamoDB", "id": entity_id(), "namespace": "aws",
            "start_time": start + 0.001, "end_time": start + 0.002,
            "aws": {"operation": "PutItem", "table_name": "xray-demo-access"}}]);
        send_doc(server, &s);
    }
    t
}

fn row_ids(page: &mut cdp::Page) -> Vec<String> {
    let v = page.eval("[...document.querySelectorAll('tr.trace-row')].map((r) => r.dataset.id)");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_box_marks_where_an_expression_is_malformed() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t0 = now() - 10.0;
    let ok = demo_trace(&ui.server, t0, 0.2, 200, false, "/api/now");
    let downstream = demo_trace(&ui.server, t0 + 1.0, 0.3, 200, true, "/api/now");
    let fault = demo_trace(&ui.server, t0 + 2.0, 0.4, 500, true, "/api/now");
    wait_accepted(&ui.server, 9);
    ui.open("");
    ui.page.wait(
        "three traces",
        "document.querySelectorAll('tr.trace-row').length === 3",
    );

    ui.page
        .eval(&type_filter("filter", "service(\"backend2\") { fault }"));
    ui.page.wait(
        "two traces",
        "document.querySelectorAll('tr.trace-row').length === 2",
    );
    assert_eq!(
        sorted(row_ids(&mut ui.page)),
        sorted(vec![downstream.clone(), fault.clone()])
    );
    ui.page.eval(&type_filter(
        "filter",
        "ok AND service(\"backend2\") { fault }",
    ));
    ui.page.wait(
        "one trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    assert_eq!(row_ids(&mut ui.page), [downstream.as_str()]);
    // The same expression in the URL, for a link to the view.
    let hash = ui
        .page
        .eval("new URLSearchParams(location.hash.slice(1)).get('filter')");
    assert_eq!(hash, json!("ok AND service(\"backend2\") { fault }"));

    // Malformed: the message names the position, and the box marks it.
    let expr = "service(\"backend2\") { fault";
    ui.page.eval(&type_filter("filter", expr));
    let message = ui.page.wait(
        "the error",
        "document.getElementById('filter-error').textContent",
    );
    let position = expr.chars().count() + 1;
    assert!(
        message.as_str().is_some_and(
            |m| m.contains(&format!("position {position}")) && m.contains("close the `{`")
        ),
        "{message}"
    );
    let mark = ui.page.eval(
        "[document.getElementById('filter-where').dataset.position, \
          document.querySelector('#filter-where mark').textContent, \
          document.querySelector('#filter-where').textContent, \
          document.getElementById('filters').elements.filter.getAttribute('aria-invalid'), \
          getComputedStyle(document.getElementById('filter-where')).display]",
    );
    assert_eq!(mark[0], json!(position.to_string()));
    assert_eq!(mark[1], json!(" "), "the end of the text is marked");
    assert_eq!(mark[2], json!(format!("{expr} ")));
    assert_eq!(mark[3], json!("true"));
    assert_ne!(mark[4], json!("none"));
    assert_eq!(
        ui.page
            .eval("document.querySelector('#traces tbody').textContent"),
        json!("Fix the filter to see traces.")
    );
    ui.page
        .eval(&type_filter("filter", "http.status = \"500\""));
    ui.page.wait(
        "the string marked",
        "document.getElementById('filter-where').dataset.position === '15'",
    );
    assert_eq!(
        ui.page
            .eval("document.querySelector('#filter-where mark').textContent"),
        json!("\"")
    );
    let conn = ui.page.eval("document.getElementById('conn').className");
    assert_eq!(
        conn,
        json!("conn"),
        "a malformed filter is not a lost connection"
    );
    ui.page.eval(&type_filter("filter", "http.status = 500"));
    ui.page.wait(
        "one trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    assert_eq!(row_ids(&mut ui.page), [fault]);
    assert_eq!(
        ui.page
            .eval("document.getElementById('filter-where').hidden"),
        json!(true)
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('filter-error').textContent"),
        json!("")
    );
    ui.page.eval(&type_filter("filter", ""));
    ui.page.wait(
        "three traces",
        "document.querySelectorAll('tr.trace-row').length === 3",
    );
    assert!(row_ids(&mut ui.page).contains(&ok));
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_picked_on_the_histogram_filters_the_list() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t0 = now() - 10.0;
    let mut fast = Vec::new();
    for (i, rt) in [0.1, 0.1, 0.12, 0.5].iter().enumerate() {
        fast.push(demo_trace(
            &ui.server,
            t0 + i as f64,
            *rt,
            200,
            false,
            "/api/now",
        ));
    }
    let slow = demo_trace(&ui.server, t0 + 5.0, 2.0, 200, false, "/api/now");
    wait_accepted(&ui.server, 15);
    ui.open("");
    ui.page.wait(
        "five traces",
        "document.querySelectorAll('tr.trace-row').length === 5",
    );
    ui.page.wait(
        "the histogram",
        "document.querySelectorAll('#histogram rect.bar').length === 40",
    );
    let total = number(
        &mut ui.page,
        "[...document.querySelectorAll('#histogram rect.bar title')].reduce((n, t) => n + Number(t.textContent.split(': ').pop()), 0)",
    );
    assert_eq!(total, 5.0);
    // Drag over the last tenth of the chart: the 2 s trace alone.
    let b = ui.page.eval(
        "(() => { const r = document.querySelector('#histogram svg').getBoundingClientRect(); \
           return [r.left, r.width, r.top + r.height / 3]; })()",
    );
    let (left, width, y) = (
        b[0].as_f64().unwrap_or(0.0),
        b[1].as_f64().unwrap_or(0.0),
        b[2].as_f64().unwrap_or(0.0),
    );
    drag(&mut ui.page, left + width * 0.9, left + width * 0.999, y);
    ui.page.wait(
        "the slow trace alone",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    assert_eq!(row_ids(&mut ui.page), [slow.as_str()]);
    let hash = ui.page.eval("location.hash");
    assert!(hash.as_str().is_some_and(|h| h.contains("rt=")), "{hash}");
    // The whole distribution stays on the chart, the picked part marked.
    assert!(
        number(
            &mut ui.page,
            "document.querySelectorAll('#histogram rect.picked').length"
        ) >= 1.0
    );
    assert_eq!(
        ui.page
            .eval("document.querySelector('#histogram rect.bar').classList.contains('picked')"),
        json!(false)
    );
    let shot = screenshot(&mut ui.page, "xray-local-histogram.png");
    println!("screenshot: {}", shot.display());
    // A drag over the first bars: the fast ones.
    let b = ui.page.eval(
        "(() => { const r = document.querySelector('#histogram svg').getBoundingClientRect(); \
           return [r.left, r.width, r.top + r.height / 3]; })()",
    );
    let (left, width, y) = (
        b[0].as_f64().unwrap_or(0.0),
        b[1].as_f64().unwrap_or(0.0),
        b[2].as_f64().unwrap_or(0.0),
    );
    drag(&mut ui.page, left + 1.0, left + width * 0.05, y);
    ui.page.wait(
        "the fast traces",
        "document.querySelectorAll('tr.trace-row').length === 3",
    );
    ui.page.eval("document.getElementById('rt-clear').click()");
    ui.page.wait(
        "all five",
        "document.querySelectorAll('tr.trace-row').length === 5",
    );
    assert_eq!(
        sorted(row_ids(&mut ui.page)),
        sorted([fast, vec![slow]].concat())
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_nodes_and_edges_show_their_numbers_and_labels_stay_clear() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t0 = now() - 20.0;
    for i in 0..10 {
        demo_trace(
            &ui.server,
            t0 + f64::from(i),
            0.1 + f64::from(i) * 0.01,
            200,
            i % 5 == 0,
            "/api/now",
        );
    }
    wait_accepted(&ui.server, 30);
    ui.open("");
    ui.page.wait(
        "the map",
        "document.querySelectorAll('.map-edge').length === 5",
    );

    // Every edge label clear of every node (circle and names), of every line and of
    // the other labels.
    let problems = ui.page.eval(
        "(() => { const svg = document.getElementById('map'); const m = svg.getScreenCTM(); \
           const box = (e) => e.getBoundingClientRect(); \
           const labels = [...svg.querySelectorAll('.map-edge rect.label-bg')].map(box); \
           const nodes = [...svg.querySelectorAll('.map-node circle, .map-node text')].map(box); \
           const over = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5; \
           const out = []; \
           labels.forEach((l, i) => { \
             nodes.forEach((n, k) => { if (over(l, n)) out.push(['node', i, k]); }); \
             labels.forEach((o, j) => { if (j > i && over(l, o)) out.push(['label', i, j]); }); \
             for (const p of svg.querySelectorAll('.map-edge path:not(.hit)')) { \
               const len = p.getTotalLength(); \
               for (let d = 0; d <= len; d += 2) { const pt = p.getPointAtLength(d).matrixTransform(m); \
                 if (pt.x > l.left + 0.5 && pt.x < l.right - 0.5 && pt.y > l.top + 0.5 && pt.y < l.bottom - 0.5) { out.push(['line', i]); break; } } } }); \
           return [labels.length, out]; })()",
    );
    assert_eq!(problems, json!([5, []]), "labels overlapping: {problems}");

    // An edge: its requests, rates, percentiles and histogram.
    ui.page.eval(
        "document.querySelector('.map-edge[data-from=\"xray-demo-bff\"][data-to=\"backend2\"]') \
           .dispatchEvent(new MouseEvent('click', {bubbles: true}))",
    );
    let details = ui.page.wait(
        "the edge's details",
        "document.querySelector('#map-details h3') && document.getElementById('map-details').textContent",
    );
    let details = details.as_str().unwrap_or_default().to_string();
    for words in [
        "xray-demo-bff → backend2",
        "requests10",
        "fault20%",
        "p50",
        "p90",
        "p99",
    ] {
        assert!(details.contains(words), "{words} in {details}");
    }
    assert!(
        number(
            &mut ui.page,
            "document.querySelectorAll('#map-details svg.hist rect.bar').length"
        ) > 0.0
    );
    assert_eq!(
        ui.page.eval(
            "document.querySelector('.map-edge[data-to=\"backend2\"]').classList.contains('picked')"
        ),
        json!(true)
    );
    // A node: the same numbers for what it received, and the list shows its traces.
    ui.page.eval(&format!(
        "{}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))",
        map_node("backend1")
    ));
    ui.page.wait(
        "the node's details",
        "document.querySelector('#map-details h3').textContent.startsWith('backend1 (service)')",
    );
    let text = ui
        .page
        .eval("document.getElementById('map-details').textContent");
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("requests10") && t.contains("ok100%")),
        "{text}"
    );
    assert_eq!(
        ui.page
            .eval("document.getElementById('filters').elements.service.value"),
        json!("backend1")
    );
    // Still there after the next polls (the map does not re-render for it).
    after_a_poll(&mut ui.page);
    assert!(
        ui.page
            .eval("document.getElementById('map-details').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("backend1"))
    );
    let shot = screenshot(&mut ui.page, "xray-local-map.png");
    println!("screenshot: {}", shot.display());
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_details_come_in_tabs_with_the_raw_json() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 1000).await else {
        return;
    };
    let t = trace_id();
    let (seg, call) = (entity_id(), entity_id());
    let t0 = now() - 2.0;
    let mut s = segment(&t, &seg, "checkout", None, t0, 0.5);
    s["http"] = json!({"request": {"method": "POST", "url": "http://shop/cart"}, "response": {"status": 502}});
    s["fault"] = json!(true);
    s["annotations"] = json!({"customer": "c-9", "items": 3});
    s["metadata"] = json!({"default": {"cart": {"total": 12.5}}});
    s["subsegments"] = json!([{"name": "DynamoDB", "id": call, "namespace": "aws", "start_time": t0 + 0.1,
        "end_time": t0 + 0.2, "fault": true, "aws": {"operation": "PutItem", "table_name": "carts"},
        "cause": {"working_directory": "/srv", "exceptions": [{"type": "ServiceError", "message": "boom",
            "stack": [{"label": "put", "path": "cart.rs", "line": 42}]}]}}]);
    send_doc(&ui.server, &s);
    wait_accepted(&ui.server, 1);
    ui.open(&format!("#trace={t}"));
    ui.page.wait(
        "two rows",
        "document.querySelectorAll('.wf-row').length === 2",
    );
    ui.page.eval(&format!("{}.click()", wf_row("checkout")));
    let tabs = ui.page.eval("[...document.querySelectorAll('#details [role=tab]')].map((t) => [t.textContent, t.getAttribute('aria-selected')])");
    assert_eq!(
        tabs,
        json!([
            ["Overview", "true"],
            ["Resources", "false"],
            ["Annotations", "false"],
            ["Metadata", "false"],
            ["Exceptions", "false"],
            ["Raw JSON", "false"]
        ])
    );
    let visible = "[...document.querySelectorAll('#details [role=tabpanel]')].filter((p) => !p.hidden).map((p) => p.dataset.panel)";
    assert_eq!(ui.page.eval(visible), json!(["overview"]));
    let overview = ui
        .page
        .eval("document.querySelector('#details [data-panel=overview]').innerText");
    assert!(
        overview
            .as_str()
            .is_some_and(|o| o.contains("POST http://shop/cart")
                && o.contains("502")
                && o.contains("fault")),
        "{overview}"
    );
    // Readable tables, not JSON blocks.
    ui.page
        .eval("document.querySelector('#details [data-tab=resources]').click()");
    assert_eq!(ui.page.eval(visible), json!(["resources"]));
    let resources = ui.page.eval("[...document.querySelectorAll('#details [data-panel=resources] tr')].map((r) => r.innerText)");
    assert!(
        resources.to_string().contains("request.method\\tPOST"),
        "{resources}"
    );
    ui.page
        .eval("document.querySelector('#details [data-tab=annotations]').click()");
    let annotations = ui
        .page
        .eval("document.querySelector('#details [data-panel=annotations]').innerText");
    assert!(
        annotations
            .as_str()
            .is_some_and(|a| a.contains("customer\tc-9") && a.contains("items\t3")),
        "{annotations}"
    );
    // The tab stays picked for the next row, whose exceptions read as a stack.
    ui.page
        .eval("document.querySelector('#details [data-tab=exceptions]').click()");
    ui.page.eval(&format!("{}.click()", wf_row("DynamoDB")));
    assert_eq!(ui.page.eval(visible), json!(["exceptions"]));
    let ex = ui
        .page
        .eval("document.querySelector('#details [data-panel=exceptions]').innerText");
    assert!(
        ex.as_str()
            .is_some_and(|e| e.contains("ServiceError: boom") && e.contains("put  cart.rs:42")),
        "{ex}"
    );
    // Raw JSON: the subsegment as it was sent.
    ui.page
        .eval("document.querySelector('#details [data-tab=raw]').click()");
    let raw = ui.page.wait(
        "the raw JSON",
        "document.querySelector('#details [data-panel=raw] pre')?.textContent",
    );
    let raw: Value = serde_json::from_str(raw.as_str().unwrap_or("")).expect("JSON");
    assert_eq!(raw["id"], json!(call));
    assert_eq!(raw["aws"]["table_name"], "carts");
    ui.page.eval(&format!("{}.click()", wf_row("checkout")));
    let raw = ui.page.wait(
        "the segment's raw JSON",
        &format!("(document.querySelector('#details [data-panel=raw] pre')?.textContent || '').includes({})", json!(seg)),
    );
    assert_eq!(raw, json!(true));
    let shot = screenshot(&mut ui.page, "xray-local-details.png");
    println!("screenshot: {}", shot.display());
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_shows_arrivals_and_pauses() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let first = demo_trace(&ui.server, now() - 5.0, 0.2, 200, false, "/api/now");
    wait_accepted(&ui.server, 3);
    ui.open("");
    ui.page.wait(
        "the trace",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    // A request still in progress shows up as it arrives.
    let open = trace_id();
    send_doc(
        &ui.server,
        &json!({"trace_id": open, "id": entity_id(), "name": "slow-job", "start_time": now() - 1.0, "in_progress": true}),
    );
    ui.page.wait(
        "the in-progress trace",
        &format!(
            "{} !== null && {}.textContent.includes('in progress')",
            list_row(&open),
            list_row(&open)
        ),
    );
    // Paused: new traces are counted, not shown.
    ui.page.eval("document.getElementById('live').click()");
    assert_eq!(
        ui.page
            .eval("document.getElementById('live').getAttribute('aria-pressed')"),
        json!("true")
    );
    let late = demo_trace(&ui.server, now() - 1.0, 0.2, 200, false, "/api/now");
    wait_accepted(&ui.server, 7);
    ui.page.wait(
        "the count of arrivals",
        "document.getElementById('conn').textContent === 'paused · 3 documents arrived since'",
    );
    assert_eq!(
        ui.page.eval(&format!("{} === null", list_row(&late))),
        json!(true)
    );
    assert_eq!(
        ui.page
            .eval("document.querySelectorAll('tr.trace-row').length"),
        json!(2)
    );
    ui.page.eval("document.getElementById('live').click()");
    ui.page
        .wait("the late trace", &format!("{} !== null", list_row(&late)));
    assert!(
        ui.page
            .eval("document.getElementById('conn').textContent")
            .as_str()
            .is_some_and(|c| c.starts_with("live · updated"))
    );
    assert!(row_ids(&mut ui.page).contains(&first));
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_rules_are_listed_and_editable() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 1100).await else {
        return;
    };
    ui.open("");
    ui.page.wait(
        "the rules",
        "document.querySelectorAll('#rules tr.rule-row').length === 2",
    );
    let rows = ui.page.eval("[...document.querySelectorAll('#rules tr.rule-row')].map((r) => [...r.cells].slice(0, 5).map((c) => c.textContent))");
    assert_eq!(
        rows,
        json!([
            ["health", "1", "GET /health", "0/s", "0%"],
            ["Default", "10000", "every request", "1/s", "100%"]
        ])
    );
    // Default: only the rate and the reservoir can change.
    ui.page
        .eval("document.querySelector('#rules tr[data-rule=Default] button.edit').click()");
    let locked = ui.page.eval("[...document.querySelectorAll('#rules form input')].filter((i) => !i.disabled).map((i) => i.name)");
    assert_eq!(locked, json!(["FixedRate", "ReservoirSize"]));
    ui.page.eval(
        "(() => { const f = document.querySelector('#rules form'); f.elements.FixedRate.value = '0.25'; \
           f.requestSubmit(); })()",
    );
    ui.page.wait(
        "the new rate",
        "document.querySelector('#rules tr[data-rule=Default]')?.cells[4]?.textContent === '25%'",
    );
    let v = request(ui.server.tcp_addr(), "POST", "/GetSamplingRules", "{}").json();
    assert_eq!(
        v["SamplingRuleRecords"][1]["SamplingRule"]["FixedRate"],
        json!(0.25)
    );
    // A new rule: refused while wrong, with the service's message, then created.
    ui.page.eval("document.getElementById('new-rule').click()");
    ui.page.eval(
        "(() => { const f = document.querySelector('#rules form'); f.elements.RuleName.value = 'no-time'; \
           f.elements.Priority.value = '0'; f.elements.URLPath.value = '/time*'; f.elements.FixedRate.value = '0'; \
           f.requestSubmit(); })()",
    );
    let error = ui.page.wait(
        "the refusal",
        "document.querySelector('#rules .rule-error')?.textContent",
    );
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.starts_with("InvalidRequestException") && e.contains("priority")),
        "{error}"
    );
    // The open form survives the polls.
    after_a_poll(&mut ui.page);
    assert_eq!(
        ui.page
            .eval("document.querySelector('#rules form').elements.RuleName.value"),
        json!("no-time")
    );
    ui.page.eval(
        "(() => { const f = document.querySelector('#rules form'); f.elements.Priority.value = '50'; f.requestSubmit(); })()",
    );
    ui.page.wait(
        "three rules",
        "document.querySelectorAll('#rules tr.rule-row').length === 3",
    );
    let v = request(ui.server.tcp_addr(), "POST", "/GetSamplingRules", "{}").json();
    assert_eq!(
        v["SamplingRuleRecords"][1]["SamplingRule"]["RuleName"],
        json!("no-time")
    );
    assert_eq!(
        v["SamplingRuleRecords"][1]["SamplingRule"]["URLPath"],
        json!("/time*")
    );
    let shot = screenshot(&mut ui.page, "xray-local-rules.png");
    println!("screenshot: {}", shot.display());
    // Deleting asks once more.
    ui.page
        .eval("document.querySelector('#rules tr[data-rule=no-time] button.delete').click()");
    assert_eq!(
        ui.page
            .eval("document.querySelectorAll('#rules tr.rule-row').length"),
        json!(3)
    );
    ui.page
        .eval("document.querySelector('#rules tr[data-rule=no-time] button.delete').click()");
    ui.page.wait(
        "two rules",
        "document.querySelectorAll('#rules tr.rule-row').length === 2",
    );
    assert!(
        !request(ui.server.tcp_addr(), "POST", "/GetSamplingRules", "{}")
            .body
            .contains("no-time")
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_shows_the_requests_it_saw_and_sampled() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 1100).await else {
        return;
    };
    // This process plays the service: segments from one socket, sampling
    // statistics over another connection.
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let doc = segment(
        &trace_id(),
        &entity_id(),
        "checkout",
        None,
        now() - 1.0,
        0.1,
    );
    sender
        .send_to(format!("{HEADER}\n{doc}").as_bytes(), ui.server.udp_addr())
        .expect("send");
    wait_accepted(&ui.server, 1);
    let report = json!({"SamplingStatisticsDocuments": [
        {"RuleName": "Default", "ClientID": format!("{:024x}", 77), "Timestamp": now(), "RequestCount": 40, "SampledCount": 40},
        {"RuleName": "health", "ClientID": format!("{:024x}", 77), "Timestamp": now(), "RequestCount": 12, "SampledCount": 0}]});
    let r = request(
        ui.server.tcp_addr(),
        "POST",
        "/SamplingTargets",
        &report.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    ui.open("");
    let line = ui.page.wait(
        "the counts",
        "document.querySelector('#service-counts li[data-services=checkout]')?.textContent",
    );
    let line = line.as_str().unwrap_or_default();
    assert!(
        line.starts_with("checkout: 52 requests seen, 40 sampled (12 not traced, by rule)"),
        "{line}"
    );
    assert!(line.contains("health: 12 seen, 0 sampled"), "{line}");
    // On the map too.
    ui.page.eval(&format!(
        "{}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))",
        map_node("checkout")
    ));
    let seen = ui.page.wait(
        "the node's counts",
        "document.querySelector('#map-details .seen')?.textContent",
    );
    assert!(
        seen.as_str()
            .is_some_and(|s| s.starts_with("52 requests seen, 40 sampled")),
        "{seen}"
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_paths_sorts_pages_searches_and_marks_downstream_failures() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let t0 = now() - 600.0;
    let sock = sender();
    let mut ids = Vec::new();
    for i in 0..250 {
        let t = trace_id();
        let mut s = segment(
            &t,
            &entity_id(),
            "web",
            None,
            t0 + f64::from(i),
            0.001 * f64::from(i + 1),
        );
        s["http"] = json!({"request": {"method": "GET", "url": format!("http://web.local:8080/items/{i}?full=1")},
            "response": {"status": 200}});
        sock.send_to(format!("{HEADER}\n{s}").as_bytes(), ui.server.udp_addr())
            .expect("send");
        ids.push(t);
    }
    let hidden = demo_trace(&ui.server, t0 - 10.0, 0.3, 200, true, "/api/now");
    wait_accepted(&ui.server, 253);
    ui.open("");
    ui.page.wait(
        "a page of 200",
        "document.querySelectorAll('tr.trace-row').length === 200",
    );
    // The path is what shows; the title keeps the whole URL.
    let cell = ui.page.eval(&format!(
        "[{0}.cells[1].querySelector('.path').textContent, {0}.cells[1].title]",
        list_row(&ids[249])
    ));
    assert_eq!(
        cell,
        json!([
            "GET /items/249?full=1",
            "web GET http://web.local:8080/items/249?full=1"
        ])
    );
    assert_eq!(
        ui.page
            .eval("document.querySelector('#pager .muted').textContent"),
        json!("1–200 of 251")
    );
    ui.page.eval("document.getElementById('next-page').click()");
    ui.page.wait(
        "the second page",
        "document.querySelectorAll('tr.trace-row').length === 51",
    );
    assert_eq!(
        ui.page
            .eval("document.querySelector('#pager .muted').textContent"),
        json!("201–251 of 251")
    );
    assert_eq!(row_ids(&mut ui.page).last(), Some(&hidden));
    // Sorting by duration: longest first, then shortest first.
    ui.page
        .eval("document.querySelector('button[data-sort=duration]').click()");
    ui.page.wait(
        "the first page again",
        "document.querySelectorAll('tr.trace-row').length === 200",
    );
    assert_eq!(row_ids(&mut ui.page)[0], hidden, "0.3 s is the longest");
    assert_eq!(ui.page.eval("document.querySelector('button[data-sort=duration]').parentElement.getAttribute('aria-sort')"), json!("descending"));
    ui.page
        .eval("document.querySelector('button[data-sort=duration]').click()");
    ui.page.wait(
        "shortest first",
        &format!(
            "document.querySelector('tr.trace-row').dataset.id === {}",
            json!(ids[0])
        ),
    );
    assert!(
        ui.page
            .eval("location.hash")
            .as_str()
            .is_some_and(|h| h.contains("sort=duration"))
    );
    // A whole trace ID opens that trace, whatever page it is on.
    ui.page.eval(&format!(
        "(() => {{ const f = document.getElementById('filters').elements.id; f.value = {}; \
           f.dispatchEvent(new Event('input', {{bubbles: true}})); f.dispatchEvent(new Event('change')); }})()",
        json!(ids[7])
    ));
    ui.page.wait(
        "that trace",
        &format!(
            "location.hash.includes({}) && document.querySelectorAll('tr.trace-row').length === 1",
            json!(ids[7])
        ),
    );
    ui.page
        .wait("its timeline", &format!("{} !== undefined", wf_row("web")));
    // The downstream failure: marked, and a status of its own.
    ui.page.eval(&type_filter("id", ""));
    ui.page.eval(&type_filter("status", "downstream"));
    ui.page.wait(
        "the downstream failure",
        &format!(
            "document.querySelectorAll('tr.trace-row').length === 1 && {} !== null",
            list_row(&hidden)
        ),
    );
    assert_eq!(row_ids(&mut ui.page), [hidden.as_str()]);
    assert_eq!(
        ui.page
            .eval(&format!("{}.cells[3].textContent", list_row(&hidden))),
        json!("ok⚠ downstream")
    );
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_traces_export_as_ndjson_and_import_back() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    let a = demo_trace(&ui.server, now() - 5.0, 0.2, 200, false, "/api/now");
    let b = demo_trace(&ui.server, now() - 4.0, 0.2, 500, true, "/api/now");
    wait_accepted(&ui.server, 6);
    ui.open("");
    ui.page.wait(
        "two traces",
        "document.querySelectorAll('tr.trace-row').length === 2",
    );
    ui.page.eval(&type_filter("status", "fault"));
    ui.page.wait(
        "the fault",
        "document.querySelectorAll('tr.trace-row').length === 1",
    );
    ui.page.wait(
        "the export link",
        "document.getElementById('export').getAttribute('href').includes('status=fault')",
    );
    let ndjson = ui.page.eval(
        "(async () => (await fetch(document.getElementById('export').getAttribute('href'))).text())()",
    );
    let ndjson = ndjson.as_str().unwrap_or_default().to_string();
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON document a line"))
        .collect();
    assert_eq!(lines.len(), 3, "{ndjson}");
    assert!(lines.iter().all(|d| d["trace_id"] == json!(b)));
    // Into another xray-local: the same traces, and a refused line counted.
    let other = start_default().await;
    let url = format!("http://{}/", other.ui_addr());
    ui.page.goto(&url);
    ui.page.wait(
        "the first poll",
        "document.getElementById('conn').textContent !== 'connecting…'",
    );
    let body = format!("{ndjson}not json\n");
    ui.page.eval(&format!(
        "importFile(new File([{}], 'traces.ndjson'))",
        json!(body)
    ));
    let result = ui.page.wait(
        "the import",
        "document.getElementById('import-result').textContent.includes('imported') && document.getElementById('import-result').textContent",
    );
    assert_eq!(
        result,
        json!("traces.ndjson: 3 documents imported, 1 lines refused (first: line 4, invalid json)")
    );
    ui.page
        .wait("the imported trace", &format!("{} !== null", list_row(&b)));
    assert_eq!(
        ui.page.eval(&format!("{} === null", list_row(&a))),
        json!(true)
    );
    let stats = get_json(&other, "/api/stats");
    assert_eq!(stats["Intake"]["ApiDocuments"], json!(4));
    other.shutdown().await;
    ui.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_viewer_with_demo_traffic() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 1000).await else {
        return;
    };
    let t0 = now() - 60.0;
    let mut last = String::new();
    for i in 0..30 {
        let path = if i % 3 == 0 { "/api/now" } else { "/api/date" };
        last = demo_trace(
            &ui.server,
            t0 + f64::from(i),
            0.05 + f64::from(i % 7) * 0.03,
            if i % 11 == 0 { 500 } else { 200 },
            i % 4 == 0,
            path,
        );
    }
    wait_accepted(&ui.server, 90);
    ui.open(&format!("#trace={last}"));
    ui.page.wait(
        "the timeline",
        &format!("{} !== undefined", wf_row("backend2")),
    );
    ui.page.eval(&format!("{}.click()", wf_row("backend2")));
    ui.page.eval(
        "document.querySelector('.map-edge[data-from=\"xray-demo-bff\"][data-to=\"backend2\"]') \
           .dispatchEvent(new MouseEvent('click', {bubbles: true}))",
    );
    ui.page.wait(
        "the edge's details",
        "document.querySelector('#map-details h3') !== null",
    );
    let shot = screenshot(&mut ui.page, "xray-local-viewer.png");
    println!("screenshot: {}", shot.display());
    ui.finish().await;
}
