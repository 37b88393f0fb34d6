//! The viewer in headless Chromium with traces that arrived as OpenTelemetry
//! spans: the empty list names the OTLP endpoint, the converted trace shows
//! in the list, the timeline and the map, and the intake panel counts the
//! OTLP requests, spans and rejections.
//!
//! Runs when `XRAY_BROWSER_TESTS=1` (then Chromium is required) or when
//! `/usr/bin/chromium` exists; otherwise it prints why it skipped.
// The skip message must reach the person running the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "browser/cdp.rs"]
mod cdp;
mod common;
#[path = "browser/ui.rs"]
mod ui;

use common::otlp::*;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use ui::*;
use xray_local::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_traces_show_in_the_viewer() {
    let Some(mut ui) = Ui::start(Config::ephemeral(), 1400, 900).await else {
        return;
    };
    ui.open("");
    let endpoint = format!("http://{}/v1/traces", ui.server.ui_addr());
    let text = ui.page.wait(
        "the empty state",
        "document.querySelector('#traces tbody').textContent",
    );
    assert!(
        text.as_str().unwrap_or_default().contains(&endpoint),
        "the empty list names the OTLP endpoint: {text}"
    );

    let t0 = now() - 5.0;
    let t = vec![
        0x7e, 0x57, 0x0b, 0x1e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let id = xray_trace_id(&t);
    let (mut checkout, inventory) = shop(&t, t0);
    // One span the endpoint would refuse (an all-zero span ID): rejected, counted.
    let mut bad = span(&t, &[0; 8], None, "bad", SpanKind::Server, t0, 0.1, vec![]);
    bad.parent_span_id.clear();
    checkout.push(bad);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(checkout_resource(), checkout),
            resource_spans(inventory_resource(), inventory),
        ],
    };
    assert_eq!(export(&ui.server, Wire::JsonGzip, &req), 1);

    ui.page.wait(
        "the OTLP trace in the list",
        &format!("{} !== null", list_row(&id)),
    );
    ui.page.eval(&format!("{}.click()", list_row(&id)));
    for name in ["checkout", "inventory", "DynamoDB"] {
        ui.page.wait(
            &format!("the {name} row"),
            &format!("{} !== undefined", wf_row(name)),
        );
    }
    for name in ["checkout", "inventory"] {
        ui.page.wait(
            &format!("the {name} node"),
            &format!("{} !== null", map_node(name)),
        );
    }
    // The intake panel's counters, label to value, once the export is in.
    let intake = ui.page.wait(
        "the OTLP counters",
        "(() => { const m = {}; \
           for (const d of document.querySelectorAll('#intake .counts > div')) \
             m[d.querySelector('span').textContent] = d.querySelector('b').textContent; \
           return m['OTLP/HTTP requests'] === '1' ? m : null; })()",
    );
    assert_eq!(intake["OTLP spans"], "5", "{intake}");
    assert_eq!(
        intake["OTLP span rejected: invalid span id"], "1",
        "{intake}"
    );
    assert_eq!(intake["documents from OTLP spans"], "4", "{intake}");
    assert_eq!(intake["OTLP datagrams"], "0", "{intake}");
    let note = ui
        .page
        .eval("document.querySelector('#intake p.muted').textContent");
    assert!(
        note.as_str().unwrap_or_default().contains(&endpoint),
        "the intake panel names the OTLP endpoint: {note}"
    );
    ui.finish().await;
}
