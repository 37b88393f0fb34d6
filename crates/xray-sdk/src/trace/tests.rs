//! The arena on its own: streaming, slot reuse, orphans and text compaction.

use super::*;
use crate::record::{Patch, Record};

fn origin() -> Origin {
    Origin {
        trace_id: TraceId::new(),
        segment_id: EntityId::new(),
        parent_id: None,
        carried: None,
        traceparent: false,
        rule_name: None,
        facade: false,
    }
}

/// A patch with one annotation.
fn annotated(key: &'static str, v: i64) -> Patch<'static> {
    let p = Patch::new();
    p.annotate(key, v);
    p
}

#[test]
fn a_segment_goes_out_once_it_and_its_subsegments_have_ended() {
    let o = origin();
    let seg = o.segment_id;
    let trace = Changes::none(|c| Trace::new(o, Some("svc"), 1, c));
    let a = EntityId::new();
    let i = annotated("k", 1)
        .apply(|c| trace.begin(0, seg, a, "a", 2, c))
        .unwrap();
    assert!(
        Changes::none(|c| trace.end(0, seg, 3, c, 100)).is_none(),
        "waits for its subsegment"
    );
    let batch =
        Changes::none(|c| trace.end(i, a, 4, c, 100)).expect("sent with its last subsegment");
    assert!(batch.is_segment);
    assert_eq!(batch.entities.len(), 2);
    assert_eq!(batch.str(batch.entities[1].name), "a");
    assert_eq!(batch.extras.len(), 1);
    assert_eq!(batch.extras[0].entity, 1);
    // Nothing more is recorded once sent.
    assert!(!annotated("late", 1).apply(|c| trace.record(0, seg, c)));
    assert!(Changes::none(|c| trace.begin(0, seg, EntityId::new(), "late", 5, c)).is_none());
}

#[test]
fn streamed_slots_are_reused_and_the_text_stays_bounded() {
    let o = origin();
    let seg = o.segment_id;
    let trace = Changes::none(|c| Trace::new(o, Some("batch-job"), 1, c));
    let mut streamed = 0;
    for n in 0..10_000u32 {
        let id = EntityId::new();
        let name = format!("item-{n}-{}", "x".repeat(40));
        let i = annotated("n", i64::from(n))
            .apply(|c| trace.begin(0, seg, id, &name, 2, c))
            .unwrap();
        if let Some(batch) = Changes::none(|c| trace.end(i, id, 3, c, 10)) {
            assert!(!batch.is_segment);
            for (e, x) in batch.entities.iter().zip(&batch.extras) {
                assert!(batch.str(e.name).starts_with("item-"));
                assert_eq!(
                    x.entity,
                    batch.entities.iter().position(|b| b.id == e.id).unwrap() as u32
                );
            }
            streamed += batch.entities.len();
        }
    }
    let state = trace.lock();
    assert!(
        state.entities.len() <= 12,
        "slots reused: {}",
        state.entities.len()
    );
    assert!(
        state.text.len() < 2_000,
        "text compacted: {}",
        state.text.len()
    );
    assert!(state.extras.len() <= 11);
    drop(state);
    let last = Changes::none(|c| trace.end(0, seg, 4, c, 10)).unwrap();
    assert_eq!(streamed + last.entities.len() - 1, 10_000);
    assert_eq!(last.str(last.entities[0].name), "batch-job");
}

#[test]
fn work_begun_under_a_streamed_subsegment_is_sent_on_its_own_and_held_for() {
    let o = origin();
    let seg = o.segment_id;
    let trace = Changes::none(|c| Trace::new(o, Some("svc"), 1, c));
    let a = EntityId::new();
    let ia = Changes::none(|c| trace.begin(0, seg, a, "a", 2, c)).unwrap();
    let streamed = Changes::none(|c| trace.end(ia, a, 3, c, 0)).expect("streamed at once");
    assert_eq!(streamed.entities[0].id, a);
    // Late work under `a`: an orphan under a's ID, which the segment waits for.
    let late = EntityId::new();
    let il = Changes::none(|c| trace.begin(ia, a, late, "late", 4, c)).unwrap();
    assert!(Changes::none(|c| trace.end(0, seg, 5, c, 100)).is_none());
    let batch =
        Changes::none(|c| trace.end(il, late, 6, c, 100)).expect("the segment goes with it");
    let orphan = batch.entities.iter().find(|e| e.id == late).unwrap();
    assert_eq!(orphan.parent, NO_PARENT);
    assert_eq!(orphan.parent_id(), Some(a));
    assert_eq!(batch.str(orphan.name), "late");
}

#[test]
fn packed_fields_read_back_what_was_set() {
    let mut aws = entity::AwsFields::default();
    assert_eq!(aws.retries(), None);
    for n in [0, 1, 7, u32::MAX - 1] {
        aws.set_retries(Some(n));
        assert_eq!(aws.retries(), Some(n));
    }
    // The one count that does not fit is kept as one less.
    aws.set_retries(Some(u32::MAX));
    assert_eq!(aws.retries(), Some(u32::MAX - 1));
    aws.set_retries(None);
    assert_eq!(aws.retries(), None);

    let mut http = entity::HttpFields::default();
    assert!(!http.has_response() && !http.has_request());
    for (status, len) in [
        (200, Some(0)),
        (0, None),
        (u16::MAX, Some(u64::MAX)),
        (206, Some(5 << 32 | 7)),
    ] {
        http.set_response(status, len);
        assert_eq!((http.status(), http.content_length()), (Some(status), len));
        assert!(http.has_response() && !http.has_request());
    }
    http.set_traced(true);
    assert!(http.traced() && !http.x_forwarded_for() && http.has_request());
    http.set_x_forwarded_for(true);
    http.set_traced(false);
    assert!(!http.traced() && http.x_forwarded_for());
}

/// Threads that begin, annotate and end subsegments of one trace at once all get the lock,
/// however often they find it held, and lose nothing: the arena's lock spins, then yields.
#[test]
fn threads_recording_into_one_trace_at_once_lose_nothing() {
    const THREADS: u32 = 4;
    const EACH: u32 = 2_000;
    let o = origin();
    let seg = o.segment_id;
    let trace = Changes::none(|c| Trace::new(o, Some("fan-out"), 1, c));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let trace = &trace;
            s.spawn(move || {
                for n in 0..EACH {
                    let id = EntityId::new();
                    let i = annotated("n", i64::from(t * EACH + n))
                        .apply(|c| trace.begin(0, seg, id, "work", 2, c))
                        .expect("begun while the segment is open");
                    assert!(annotated("t", i64::from(t)).apply(|c| trace.record(i, id, c)));
                    assert!(Changes::none(|c| trace.end(i, id, 3, c, u32::MAX)).is_none());
                }
            });
        }
    });
    let batch = Changes::none(|c| trace.end(0, seg, 4, c, u32::MAX)).expect("sent once ended");
    let subsegments = (THREADS * EACH) as usize;
    assert_eq!(batch.entities.len(), 1 + subsegments);
    // Each subsegment holds its two annotations, and every `n` was recorded once.
    assert_eq!(batch.extras.len(), 2 * subsegments);
    let mut seen: Vec<i64> = batch
        .extras
        .iter()
        .filter_map(|x| match &x.item {
            Item::Annotation {
                key,
                value: Scalar::Int(v),
            } if batch.str(*key) == "n" => Some(*v),
            _ => None,
        })
        .collect();
    seen.sort_unstable();
    assert!(seen.iter().copied().eq(0..i64::from(THREADS * EACH)));
}

#[test]
fn the_latest_value_of_an_aws_key_wins_typed_or_not() {
    let o = origin();
    let seg = o.segment_id;
    let trace = Changes::none(|c| Trace::new(o, Some("svc"), 1, c));
    let id = EntityId::new();
    // In one patch: untyped, then typed (the untyped value goes); typed, then untyped (the
    // typed value goes); and a plain field set on each side of them. (A value that is not a
    // plain string, or not a count for `retries`, stays untyped.)
    let mut p = Patch::new();
    p.set_aws_region("us-east-1");
    p.set_aws_field("operation", 7);
    p.set_aws_operation("GetItem");
    p.set_aws_retries(2);
    p.set_aws_field("retries", "many");
    p.set_aws_table_name("orders");
    let i = p.apply(|c| trace.begin(0, seg, id, "call", 2, c)).unwrap();
    // Changes made one at a time, after the entity has extras.
    let mut p = Patch::new();
    p.set_aws_field("request_id", 1);
    assert!(p.apply(|c| trace.record(i, id, c)));
    let mut p = Patch::new();
    p.set_aws_request_id("REQ1");
    assert!(p.apply(|c| trace.record(i, id, c)));
    let batch = Changes::none(|c| trace.end(i, id, 3, c, u32::MAX))
        .or_else(|| Changes::none(|c| trace.end(0, seg, 4, c, u32::MAX)))
        .expect("sent once ended");
    let e = batch.entities.iter().find(|e| e.id == id).unwrap();
    let typed = |k: AwsKey| e.aws.get(k).map(|t| batch.str(t).to_owned());
    assert_eq!(typed(AwsKey::Operation).as_deref(), Some("GetItem"));
    assert_eq!(typed(AwsKey::Region).as_deref(), Some("us-east-1"));
    assert_eq!(typed(AwsKey::TableName).as_deref(), Some("orders"));
    assert_eq!(typed(AwsKey::RequestId).as_deref(), Some("REQ1"));
    assert_eq!(e.aws.retries(), None, "the untyped retries came last");
    let untyped: Vec<(&str, &str)> = batch
        .extras
        .iter()
        .filter_map(|x| match &x.item {
            Item::Aws { key, json } => Some((batch.str(*key), batch.str(*json))),
            _ => None,
        })
        .collect();
    assert_eq!(untyped, [("retries", "\"many\"")]);
}
