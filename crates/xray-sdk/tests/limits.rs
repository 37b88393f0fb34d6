//! The 64 KiB rule, queue overflow accounting, and an emitter that survives a dead daemon.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use xray_sdk::Record;
use xray_sdk::emitter::MAX_DATAGRAM_SIZE;
use xray_sdk::model::{Exception, Sql, StackFrame};
use xray_sdk::testing::{UdpCapture, flatten};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn oversized_segment_is_split_into_independent_subsegments() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("big");
    let segment = recorder.segment("big").begin();
    let blob = "x".repeat(30_000);
    for i in 0..3 {
        let sub = segment.begin_subsegment(format!("part-{i}"));
        sub.put_metadata("blob", &blob);
        let child = sub.begin_subsegment(format!("child-{i}"));
        child.end();
        sub.end();
    }
    segment.end();
    recorder.flush(WAIT).unwrap();
    let grams = capture.drain(Duration::from_millis(300));
    assert!(grams.len() >= 4, "got {}", grams.len());
    for g in &grams {
        assert!(g.bytes.len() <= MAX_DATAGRAM_SIZE, "{}", g.bytes.len());
        assert!(g.has_daemon_header());
    }
    let docs: Vec<Value> = grams.iter().map(|g| g.document()).collect();
    let seg = docs.iter().find(|d| d.get("type").is_none()).unwrap();
    assert!(seg.get("subsegments").is_none());
    let parts: Vec<&Value> = docs.iter().filter(|d| d["type"] == "subsegment").collect();
    assert_eq!(parts.len(), 3);
    for p in parts {
        assert_eq!(p["parent_id"], seg["id"]);
        assert_eq!(p["trace_id"], seg["trace_id"]);
        assert_eq!(
            p["metadata"]["default"]["blob"].as_str().unwrap().len(),
            30_000
        );
        assert!(
            p["subsegments"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with("child-")
        );
    }
    let stats = recorder.stats();
    assert_eq!(stats.sent, 4);
    assert_eq!(stats.dropped_too_large + stats.truncated, 0);
}

#[test]
fn a_single_huge_document_loses_metadata_then_is_dropped_and_counted() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("huge");
    let segment = recorder.segment("huge").begin();
    segment.put_metadata("blob", "y".repeat(100_000));
    let sub = segment.begin_subsegment("many-annotations");
    for i in 0..80 {
        sub.annotate(format!("k{i}"), "z".repeat(1_000));
    }
    sub.end();
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs: Vec<Value> = capture.drain_documents(Duration::from_millis(300));
    // The subsegment (80 kB of annotations) cannot fit: dropped and counted.
    // The segment fits once its metadata is removed: sent, marked, counted.
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["metadata"]["xray_sdk"]["truncated"],
        "metadata removed: document over 64 KiB"
    );
    let stats = recorder.stats();
    assert_eq!(
        (stats.sent, stats.truncated, stats.dropped_too_large),
        (1, 1, 1)
    );
}

#[test]
fn a_huge_error_message_or_query_is_cut_not_the_document_dropped() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("huge-cause");
    let segment = recorder.segment("huge-cause").begin();
    let mut failure = Exception::new(format!("body: {}", "é".repeat(40_000)), "ServiceError");
    failure.stack = (0..40)
        .map(|i| StackFrame {
            path: Some(format!("src/{}.rs", "p".repeat(2_000))),
            line: Some(i),
            label: Some(format!("app::f{i}")),
        })
        .collect();
    segment.add_exception(failure);
    segment.set_fault();
    let query = segment.begin_subsegment("db");
    query.set_sql(Sql {
        sanitized_query: Some(format!("SELECT {}", "c, ".repeat(30_000))),
        database_type: Some("PostgreSQL".into()),
        ..Sql::default()
    });
    query.end();
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs: Vec<Value> = capture.drain_documents(Duration::from_millis(300));
    let all = flatten(&docs);
    let find = |name: &str| {
        all.iter()
            .find(|(_, _, d)| d["name"] == name)
            .map(|(_, _, d)| d.clone())
            .unwrap_or_else(|| panic!("{name} not sent: {all:?}"))
    };
    let seg = find("huge-cause");
    assert_eq!(seg["fault"], true);
    let ex = &seg["cause"]["exceptions"][0];
    let message = ex["message"].as_str().unwrap();
    assert!(message.starts_with("body: éé"), "{message:.40}");
    assert!(message.ends_with("(cut: document over 64 KiB)"));
    assert!(message.len() < 1_100, "{}", message.len());
    assert_eq!(ex["type"], "ServiceError");
    assert_eq!(ex["stack"].as_array().unwrap().len(), 10);
    assert_eq!(ex["truncated"], 30);
    let db = find("db");
    let q = db["sql"]["sanitized_query"].as_str().unwrap();
    assert!(
        q.starts_with("SELECT c, c, ") && q.len() < 1_100,
        "{}",
        q.len()
    );
    assert_eq!(db["sql"]["database_type"], "PostgreSQL");
    let stats = recorder.stats();
    assert_eq!(stats.dropped_too_large, 0, "{stats:?}");
    assert!(stats.truncated >= 1, "{stats:?}");
}

#[test]
fn full_queue_drops_are_counted_and_nothing_else_is_lost() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("burst")
        .queue_capacity(4)
        .build()
        .unwrap();
    let total = 5_000u64;
    for _ in 0..total {
        recorder.segment("burst").begin().end();
    }
    recorder.flush(WAIT).unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.queued + stats.dropped_queue_full, total);
    assert_eq!(stats.sent, stats.queued, "{stats:?}");
    assert_eq!(stats.pending(), 0);
}

#[test]
fn emitter_survives_a_closed_port_and_resumes_when_it_reopens() {
    let capture = UdpCapture::start().unwrap();
    let addr = capture.address();
    let recorder = capture.recorder("flaky");
    recorder.segment("before").begin().end();
    recorder.flush(WAIT).unwrap();
    assert_eq!(capture.documents(1, WAIT)[0]["name"], "before");

    drop(capture);
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..20 {
        recorder.segment("while-closed").begin().end();
    }
    recorder.flush(WAIT).unwrap();

    let deadline = Instant::now() + WAIT;
    let reopened = loop {
        match UdpCapture::bind(addr) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    };
    recorder.segment("after").begin().end();
    recorder.flush(WAIT).unwrap();
    let docs = reopened.documents(1, WAIT);
    assert_eq!(docs[0]["name"], "after");
    let stats = recorder.stats();
    assert_eq!(stats.queued, 22);
    assert_eq!(stats.sent + stats.send_errors, 22, "{stats:?}");
}

#[test]
fn unresolvable_daemon_costs_only_counted_errors() {
    let recorder = xray_sdk::Recorder::builder()
        .ignore_env()
        .daemon_address("xray-daemon.invalid:2000")
        .sampler(xray_sdk::sampling::AlwaysSample)
        .centralized_sampling(false)
        .plugins(xray_sdk::plugins::Plugins::none())
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..10 {
        recorder.segment("nowhere").begin().end();
    }
    // Ending segments never waits on the network.
    assert!(started.elapsed() < Duration::from_millis(500));
    recorder.flush(WAIT).unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.queued, 10);
    assert_eq!(stats.send_errors, 10, "{stats:?}");
    assert_eq!(stats.sent, 0);
}

#[test]
fn streaming_threshold_zero_sends_each_subsegment_as_it_completes() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("eager")
        .streaming_threshold(0)
        .build()
        .unwrap();
    let segment = recorder.segment("eager").begin();
    let outer = segment.begin_subsegment("outer");
    outer.begin_subsegment("inner").end();
    recorder.flush(WAIT).unwrap();
    // "inner" is complete while its parent is open: it goes out on its own.
    let early = capture.documents(1, WAIT);
    assert_eq!(early[0]["name"], "inner");
    assert_eq!(early[0]["type"], "subsegment");
    assert_eq!(early[0]["parent_id"], outer.id().to_string());
    outer.end();
    segment.end();
    recorder.flush(WAIT).unwrap();
    let rest: Vec<Value> = capture.drain_documents(Duration::from_millis(200));
    let all = flatten(&[early, rest].concat());
    let names: Vec<&str> = all
        .iter()
        .map(|(_, _, d)| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "inner").count(), 1);
    assert_eq!(names.iter().filter(|n| **n == "outer").count(), 1);
    assert_eq!(names.iter().filter(|n| **n == "eager").count(), 1);
}

#[test]
fn work_begun_under_a_streamed_subsegment_is_still_sent() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("late")
        .streaming_threshold(0)
        .build()
        .unwrap();
    let segment = recorder.segment("late").begin();
    let trace_id = segment.trace_id().to_string();
    let keep_open = segment.begin_subsegment("keep-open");
    let streamed = segment.begin_subsegment("streamed");
    let streamed_ctx = streamed.context();
    streamed.end();
    recorder.flush(WAIT).unwrap();
    let early = capture.documents(1, WAIT);
    assert_eq!(early[0]["name"], "streamed");
    // Begun from a context whose subsegment has already gone out on its own.
    let child = streamed_ctx.begin_subsegment("child-of-streamed");
    let child_id = child.id().to_string();
    // Case 1: it ends while the segment is still open.
    child.end();
    // Case 2: one that ends after everything else, so it leaves with the segment.
    let last = streamed_ctx.begin_subsegment("last-child");
    let last_id = last.id().to_string();
    keep_open.end();
    segment.end();
    // The segment waits for it: nothing lost, nothing sent early.
    last.end();
    recorder.flush(WAIT).unwrap();
    let rest: Vec<Value> = capture.drain_documents(Duration::from_millis(300));
    let all = flatten(&[early.clone(), rest.clone()].concat());
    for (name, id) in [("child-of-streamed", &child_id), ("last-child", &last_id)] {
        let found: Vec<&Value> = rest
            .iter()
            .chain(early.iter())
            .filter(|d| d["name"] == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name} sent once as its own document: {all:?}"
        );
        let doc = found[0];
        assert_eq!(doc["id"], **id);
        assert_eq!(doc["type"], "subsegment");
        assert_eq!(doc["parent_id"], streamed_ctx.id().to_string());
        assert_eq!(doc["trace_id"], trace_id);
    }
    let names: Vec<&str> = all
        .iter()
        .map(|(_, _, d)| d["name"].as_str().unwrap())
        .collect();
    for name in ["late", "keep-open", "streamed"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{names:?}");
    }
    let stats = recorder.stats();
    assert_eq!(stats.dropped_too_large, 0);
}

#[test]
fn long_lived_segment_streams_every_subsegment_exactly_once_in_order() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("batch-job")
        .streaming_threshold(50)
        .queue_capacity(100_000)
        .build()
        .unwrap();
    let segment = recorder.segment("batch-job").begin();
    // An open subsegment whose children complete while it stays open.
    let open_parent = segment.begin_subsegment("open-parent");
    let mut grams = Vec::new();
    let mut busy = Duration::ZERO;
    for i in 0..20_000u32 {
        let started = Instant::now();
        let parent = if i % 2 == 0 { &*segment } else { &*open_parent };
        let step = parent.begin_subsegment(format!("step-{i}"));
        step.begin_subsegment("a").end();
        step.begin_subsegment("b").end();
        step.end();
        busy += started.elapsed();
        if i % 100 == 99 {
            // Pace the sender to what a plain socket reader keeps up with (untimed).
            recorder.flush(WAIT).unwrap();
            grams.extend(capture.drain(Duration::from_millis(20)));
        }
    }
    // Streaming cost does not grow with what was already streamed.
    assert!(busy < Duration::from_secs(20), "{busy:?}");
    open_parent.end();
    segment.end();
    recorder.flush(Duration::from_secs(30)).unwrap();
    grams.extend(capture.drain(Duration::from_millis(200)));
    let stats = recorder.stats();
    assert_eq!(stats.dropped_queue_full, 0);
    assert_eq!(grams.len() as u64, stats.sent);
    let docs: Vec<Value> = grams.iter().map(|g| g.document()).collect();
    let all = flatten(&docs);
    // 1 segment + 1 open parent + 20 000 steps with 2 children each.
    assert_eq!(all.len(), 2 + 60_000);
    let mut ids: Vec<&String> = all.iter().map(|(id, _, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2 + 60_000, "every entity exactly once");
    for (_, _, d) in &all {
        if d["name"].as_str().unwrap().starts_with("step-") {
            let kids: Vec<&str> = d["subsegments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap())
                .collect();
            assert_eq!(kids, ["a", "b"], "children keep their order");
        }
    }
}

/// A long-lived segment that records an error per message keeps the first
/// `MAX_EXCEPTIONS`, counts the rest in `skipped`, and is still sent; one whose kept
/// exceptions are too large for a datagram keeps ten of them, the others counted too.
#[test]
fn exceptions_per_segment_are_capped_and_counted() {
    use xray_sdk::model::MAX_EXCEPTIONS;
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("stream");
    let segment = recorder.segment("stream").begin();
    for i in 0..10_000 {
        segment.add_exception(Exception::new(format!("bad message {i}"), "Invalid"));
    }
    segment.end();
    let big = recorder.segment("big-errors").begin();
    for i in 0..MAX_EXCEPTIONS {
        big.add_exception(Exception::new(format!("{i}: {}", "e".repeat(4_000)), "Big"));
    }
    big.end();
    recorder.flush(WAIT).unwrap();
    let docs: Vec<Value> = capture.drain_documents(Duration::from_millis(300));
    let find = |name: &str| {
        docs.iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} not sent"))
    };
    let exceptions = find("stream")["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), MAX_EXCEPTIONS);
    assert_eq!(exceptions[0]["message"], "bad message 0");
    let last = &exceptions[MAX_EXCEPTIONS - 1];
    assert_eq!(last["skipped"], 10_000 - MAX_EXCEPTIONS);
    let exceptions = find("big-errors")["cause"]["exceptions"]
        .as_array()
        .unwrap();
    assert_eq!(exceptions.len(), 10);
    assert_eq!(exceptions[9]["skipped"], MAX_EXCEPTIONS - 10);
    assert_eq!(recorder.stats().dropped_too_large, 0);
}
