//! User code that the SDK runs for a change (closures, metadata values being serialized) and
//! that records into the same trace or another one: it runs before any lock is taken, so it
//! never deadlocks and nothing it records is lost. Also: panics in those closures; the
//! context read while the thread's storage is torn down; work begun after its segment was
//! sent.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;
use xray_sdk::Record;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Context, SamplingFlag};

const WAIT: Duration = Duration::from_secs(5);

/// Runs `f` on its own thread and fails the test if it does not return in time (a deadlock).
fn within_time<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT)
        .expect("deadlocked: the closure never returned")
}

fn by_name<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {docs:?}"))
}

#[test]
fn changes_to_the_same_trace_from_inside_a_closure_are_recorded_without_deadlock() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let docs = within_time(move || {
        let segment = recorder.segment("svc").begin();
        let ctx = segment.context();
        let call = segment.begin_subsegment("call");
        let done = segment.begin_subsegment("done-inside");
        call.end_with(|e| {
            e.set_http_response(503, None);
            // The same trace, from inside the closure: recorded at once.
            ctx.set_throttle();
            ctx.annotate("inside", 1);
            let inner = ctx.begin_subsegment("begun-inside");
            assert_eq!(inner.downstream_header().sampled(), SamplingFlag::Sampled);
            inner.end();
            done.end();
        });
        segment.update(|e| e.put_metadata("after", true));
        segment.end();
        recorder.flush(WAIT).unwrap();
        capture.drain_documents(Duration::from_millis(300))
    });
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    assert_eq!(doc["throttle"], true, "{doc}");
    assert_eq!(doc["annotations"]["inside"], 1, "{doc}");
    assert_eq!(doc["metadata"]["default"]["after"], true);
    let subs = doc["subsegments"].as_array().unwrap();
    let names: Vec<&str> = subs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["call", "done-inside", "begun-inside"]);
    assert_eq!(by_name(subs, "call")["fault"], true);
    for name in ["done-inside", "begun-inside"] {
        let sub = by_name(subs, name);
        assert!(sub["end_time"].as_f64().unwrap() >= sub["start_time"].as_f64().unwrap());
        assert!(sub.get("in_progress").is_none(), "{sub}");
    }
}

#[test]
fn a_trace_touched_from_another_trace_s_closure_is_recorded_without_deadlock() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let docs = within_time(move || {
        let first = recorder.segment("first").begin();
        let second = recorder.segment("second").begin();
        let first_ctx = first.context();
        let second_ctx = second.context();
        let first_call = first.begin_subsegment("first-call");
        first.update(|_| {
            // From the first trace's closure: another trace is recorded into as usual...
            second_ctx.update(|e| {
                e.annotate("from_first", 1);
                // ...and from there, the first trace again, and its subsegment ended.
                first_ctx.annotate("from_second", 1);
                first_call.end();
            });
            second_ctx.annotate("after_inner", 2);
        });
        first.update(|e| e.put_metadata("after", true));
        second.end();
        first.end();
        recorder.flush(WAIT).unwrap();
        capture.drain_documents(Duration::from_millis(300))
    });
    assert_eq!(docs.len(), 2, "{docs:?}");
    let first = by_name(&docs, "first");
    assert_eq!(first["annotations"]["from_second"], 1, "{first}");
    assert_eq!(first["metadata"]["default"]["after"], true);
    let call = &first["subsegments"][0];
    assert_eq!(call["name"], "first-call");
    assert!(call.get("in_progress").is_none(), "{call}");
    let second = by_name(&docs, "second");
    assert_eq!(second["annotations"]["from_first"], 1);
    assert_eq!(second["annotations"]["after_inner"], 2);
}

#[test]
fn two_threads_recording_into_each_other_s_trace_from_closures_lose_nothing() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let first = recorder.segment("first").begin();
    let second = recorder.segment("second").begin();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    // Each thread, inside its own trace's `update` closure, waits for the other to be inside
    // its own, then records into the other's trace.
    let cross = |held: Context, other: Context, key: &'static str| {
        let barrier = std::sync::Arc::clone(&barrier);
        move || {
            held.update(|e| {
                e.annotate("own", 1);
                barrier.wait();
                other.annotate(key, 1);
            });
        }
    };
    let one = std::thread::spawn(cross(first.context(), second.context(), "from_first"));
    let two = std::thread::spawn(cross(second.context(), first.context(), "from_second"));
    let docs = within_time(move || {
        one.join().unwrap();
        two.join().unwrap();
        first.end();
        second.end();
        recorder.flush(WAIT).unwrap();
        capture.drain_documents(Duration::from_millis(300))
    });
    assert_eq!(docs.len(), 2, "{docs:?}");
    let first = by_name(&docs, "first");
    let second = by_name(&docs, "second");
    assert_eq!(first["annotations"]["own"], 1);
    assert_eq!(second["annotations"]["own"], 1);
    assert_eq!(first["annotations"]["from_second"], 1, "{docs:?}");
    assert_eq!(second["annotations"]["from_first"], 1, "{docs:?}");
}

/// A metadata value whose serialization records into the current trace.
struct Chatty(Context);

impl Serialize for Chatty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.annotate("from_serialize", true);
        s.serialize_str("chatty")
    }
}

#[test]
fn a_metadata_value_that_records_while_serialized_is_recorded_without_deadlock() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let docs = within_time(move || {
        let segment = recorder.segment("svc").begin();
        let value = Chatty(segment.context());
        segment.update(|e| e.put_metadata("value", &value));
        segment.end();
        recorder.flush(WAIT).unwrap();
        capture.drain_documents(Duration::from_millis(300))
    });
    assert_eq!(docs[0]["metadata"]["default"]["value"], "chatty");
    assert_eq!(
        docs[0]["annotations"]["from_serialize"], true,
        "{}",
        docs[0]
    );
}

#[test]
fn a_panic_in_an_end_closure_still_sends_the_segment() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let segment = recorder.segment("svc").begin();
    let call = segment.begin_subsegment("call");
    let body: Vec<u8> = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call.end_with(|e| e.set_http_response(200, Some(u64::from(body[0]))));
    }));
    assert!(outcome.is_err());
    let init = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _sub = segment.begin_subsegment_with("init", |_| panic!("in init"));
    }));
    assert!(init.is_err());
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs = capture.drain_documents(Duration::from_millis(300));
    assert_eq!(docs.len(), 1, "{docs:?}");
    let subs = docs[0]["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["name"], "call");
}

#[test]
fn work_begun_after_the_segment_was_sent_keeps_the_trace_sampled_downstream() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let segment = recorder.segment("svc").begin();
    let ctx = segment.context();
    segment.end();
    let late = ctx.begin_subsegment("late");
    let header = late.downstream_header();
    assert_eq!(header.sampled(), SamplingFlag::Sampled);
    assert_eq!(header.root(), Some(ctx.trace_id()));
    late.end();
    recorder.flush(WAIT).unwrap();
    let docs = capture.drain_documents(Duration::from_millis(300));
    assert_eq!(docs.len(), 1);
    assert!(docs[0].get("subsegments").is_none(), "{}", docs[0]);
}

thread_local! {
    static LATE: Late = const { Late };
}

struct Late;

impl Drop for Late {
    fn drop(&mut self) {
        // Runs while the thread's storage is torn down, possibly after the SDK's own.
        let _ = xray_sdk::context::current();
        xray_sdk::context::with_current(|c| assert!(c.is_none()));
        let mut slot = None;
        xray_sdk::context::swap_current(&mut slot);
    }
}

#[test]
fn the_context_read_during_thread_teardown_is_none_not_an_abort() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    std::thread::spawn(move || {
        // This thread-local first, the SDK's next: destroyed in the opposite order, so
        // `Late` runs after the SDK's is gone.
        LATE.with(|_| {});
        let segment = recorder.segment("svc").begin();
        let _entered = segment.context().enter();
        assert!(xray_sdk::context::current().is_some());
    })
    .join()
    .unwrap();
}
