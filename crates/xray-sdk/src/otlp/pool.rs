//! Allocations kept from export to export on the thread that maps spans. The generated
//! OTLP types own their strings and byte vectors, so a span costs some twenty allocations
//! and as many frees; once a request is sent, its spans' buffers come back here and the
//! next spans are written into them. Bounded: beyond [`MAX_KEPT`] buffers of a kind, the
//! rest are freed.

use std::cell::RefCell;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

/// At most this many buffers of each kind are kept (two export batches of spans' worth).
const MAX_KEPT: usize = 16 * 1024;

#[derive(Default)]
struct Pool {
    /// Attribute keys and span names.
    keys: Vec<String>,
    /// String values.
    values: Vec<String>,
    /// Trace and span IDs.
    bytes: Vec<Vec<u8>>,
    /// Attribute lists.
    lists: Vec<Vec<KeyValue>>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

fn take<T: Default>(pick: impl FnOnce(&mut Pool) -> Option<T>) -> T {
    POOL.try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| pick(&mut p)))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A key (or a span name) equal to `s`.
pub(crate) fn key(s: &str) -> String {
    let mut out = take(|p| p.keys.pop());
    out.clear();
    out.push_str(s);
    out
}

/// A string value equal to `s`.
pub(crate) fn value(s: &str) -> String {
    let mut out = take(|p| p.values.pop());
    out.clear();
    out.push_str(s);
    out
}

/// A byte vector equal to `b`.
pub(crate) fn bytes(b: &[u8]) -> Vec<u8> {
    let mut out = take(|p| p.bytes.pop());
    out.clear();
    out.extend_from_slice(b);
    out
}

/// An empty attribute list.
pub(crate) fn list() -> Vec<KeyValue> {
    let mut out = take(|p| p.lists.pop());
    out.clear();
    out
}

/// Takes back the buffers of `spans`, which it empties.
pub(crate) fn recycle(spans: &mut Vec<Span>) {
    let _ = POOL.try_with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return;
        };
        for span in spans.drain(..) {
            if p.keys.len() >= MAX_KEPT {
                break;
            }
            let Span {
                trace_id,
                span_id,
                parent_span_id,
                name,
                mut attributes,
                ..
            } = span;
            p.keys.push(name);
            for id in [trace_id, span_id, parent_span_id] {
                if id.capacity() > 0 && p.bytes.len() < MAX_KEPT {
                    p.bytes.push(id);
                }
            }
            for kv in attributes.drain(..) {
                if p.keys.len() < MAX_KEPT {
                    p.keys.push(kv.key);
                }
                if let Some(AnyValue {
                    value: Some(Value::StringValue(v)),
                }) = kv.value
                    && p.values.len() < MAX_KEPT
                {
                    p.values.push(v);
                }
            }
            if p.lists.len() < MAX_KEPT {
                p.lists.push(attributes);
            }
        }
    });
    spans.clear();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn span_with(name: &str, attrs: usize) -> Span {
        let mut attributes = list();
        for i in 0..attrs {
            attributes.push(KeyValue {
                key: key(&format!("key.{i}")),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(value("a value long enough to notice"))),
                }),
                ..Default::default()
            });
        }
        Span {
            trace_id: bytes(&[7; 16]),
            span_id: bytes(&[1; 8]),
            name: key(name),
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn buffers_come_back_with_their_capacity_and_new_contents() {
        // Each test runs on its own thread: the pool starts empty.
        let mut spans = vec![span_with("a-rather-long-span-name-for-capacity", 3)];
        recycle(&mut spans);
        assert!(spans.is_empty());
        let v = value("short");
        assert_eq!(v, "short");
        // A buffer given back, not a new one.
        assert!(v.capacity() >= "a value long enough to notice".len());
        let id = bytes(&[9; 8]);
        assert_eq!(id, vec![9; 8]);
        let l = list();
        assert!(l.is_empty() && l.capacity() >= 3);
        let k = key("k");
        assert_eq!(k, "k");
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut spans: Vec<Span> = (0..MAX_KEPT + 10).map(|_| Span::default()).collect();
        for s in &mut spans {
            s.name = String::from("n");
        }
        recycle(&mut spans);
        assert!(spans.is_empty());
        POOL.with(|p| {
            let p = p.borrow();
            assert!(p.keys.len() <= MAX_KEPT);
            assert!(p.lists.len() <= MAX_KEPT);
        });
    }
}
