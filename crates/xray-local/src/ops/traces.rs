//! `PutTraceSegments`, `GetTraceSummaries` and `BatchGetTraces`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::document;
use crate::state::store::{Store, Trace};
use crate::state::{App, unix_now};
use crate::views::documents;
use crate::views::filter::{Facts, Filter};
use crate::views::summary::Summary;

use super::{ApiError, Members, OpResult, next_token, request};

/// Most trace IDs accepted by one batch call.
pub const MAX_BATCH_IDS: usize = 100;
/// Most stored bytes (as the store counts them) one batch call returns; the
/// traces past it are listed in `UnprocessedTraceIds`.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Summaries per `GetTraceSummaries` page.
pub const SUMMARIES_PER_PAGE: usize = 100;

/// `POST /TraceSegments`: each document goes through the checks the UDP
/// intake applies and is stored like a datagram's; the ones the service
/// would refuse (not JSON, or with problems) are listed as unprocessed.
pub fn put_trace_segments(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let docs = Members(&req).required("TraceSegmentDocuments", Members::strings)?;
    let mut unprocessed = Vec::new();
    for doc in docs {
        let id = document::top_level_field(doc, "id")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match app.ingest_document(doc.as_bytes()) {
            Err(reject) => unprocessed.push(json!({
                "Id": id,
                "ErrorCode": reject.as_str(),
                "Message": format!("the document was not accepted: {}", reject.as_str().replace('_', " ")),
            })),
            Ok((_, problems)) if !problems.is_empty() => {
                let message: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
                unprocessed.push(json!({
                    "Id": id,
                    "ErrorCode": problems[0].code,
                    "Message": message.join("; "),
                }));
            }
            Ok(_) => {}
        }
    }
    Ok(json!({ "UnprocessedTraceSegments": unprocessed }))
}

/// The time in a trace ID (`1-5759e988-...`), Unix seconds.
pub fn trace_id_time(id: &str) -> Option<f64> {
    let hex = id.strip_prefix("1-")?.get(..8)?;
    u32::from_str_radix(hex, 16).ok().map(f64::from)
}

/// Where a page of summaries starts: after this trace, in the order of the
/// list (newest start first, then by ID).
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    start: f64,
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("v1.{:016x}.{}", self.start.to_bits(), self.id)
    }

    fn decode(token: &str) -> Option<Cursor> {
        let rest = token.strip_prefix("v1.")?;
        let (bits, id) = rest.split_once('.')?;
        let start = f64::from_bits(u64::from_str_radix(bits, 16).ok()?);
        (start.is_finite() && !id.is_empty()).then(|| Cursor {
            start,
            id: id.to_string(),
        })
    }

    /// `true` when (start, id) comes after the cursor in the list.
    fn before(&self, start: f64, id: &str) -> bool {
        start < self.start || (start == self.start && id > self.id.as_str())
    }
}

/// `true` for the share `rate` of trace IDs (the same ones every time).
fn in_sample(id: &str, rate: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV alone leaves similar IDs close together.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64 <= rate
}

/// `POST /TraceSummaries`.
pub fn get_trace_summaries(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let start = m.required("StartTime", Members::time)?;
    let end = m.required("EndTime", Members::time)?;
    if end < start {
        return Err(ApiError::invalid("EndTime must not be before StartTime"));
    }
    let by_trace_id = match m.string("TimeRangeType")? {
        None | Some("TraceId") => true,
        Some("Event" | "Service") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "TimeRangeType must be TraceId, Event or Service, not {other:?}"
            )));
        }
    };
    let filter = match m.string("FilterExpression")? {
        Some(text) if !text.trim().is_empty() => {
            Some(Filter::parse(text).map_err(|e| ApiError::invalid(e.to_string()))?)
        }
        _ => None,
    };
    // A sample of the traces: a fixed rate keeps that share; a partial scan
    // (the default strategy) looks at every trace locally.
    let mut rate = None;
    if m.boolean("Sampling")?.unwrap_or(false)
        && let Some(s) = m.object("SamplingStrategy")?
    {
        match s.string("Name")? {
            None | Some("PartialScan") => {}
            Some("FixedRate") => {
                let v = s.number("Value")?.unwrap_or(1.0);
                if !(0.0..=1.0).contains(&v) {
                    return Err(ApiError::invalid(
                        "SamplingStrategy.Value must be from 0 to 1",
                    ));
                }
                rate = Some(v);
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "SamplingStrategy.Name must be PartialScan or FixedRate, not {other:?}"
                )));
            }
        }
    }
    let cursor = next_token(&m, Cursor::decode)?;
    let store = app.store();
    let mut processed = 0usize;
    let mut hits: Vec<(f64, &Trace)> = Vec::new();
    for t in store.traces() {
        let (first, _) = t.time_range();
        let when = if by_trace_id {
            // A trace ID without a time is one the service would have refused.
            let Some(when) = trace_id_time(&t.id) else {
                continue;
            };
            when
        } else {
            first
        };
        if when < start || when > end {
            continue;
        }
        processed += 1;
        if rate.is_some_and(|r| !in_sample(&t.id, r)) {
            continue;
        }
        if let Some(f) = &filter
            && !f.matches(&Facts::new(t, f.needs_graph()))
        {
            continue;
        }
        if cursor.as_ref().is_some_and(|c| !c.before(first, &t.id)) {
            continue;
        }
        hits.push((first, t));
    }
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let more = hits.len() > SUMMARIES_PER_PAGE;
    hits.truncate(SUMMARIES_PER_PAGE);
    let summaries: Vec<Value> = hits
        .iter()
        .map(|(_, t)| Summary::of(t).to_xray_json())
        .collect();
    let next = hits.last().filter(|_| more).map(|(start, t)| Cursor {
        start: *start,
        id: t.id.to_string(),
    });
    drop(store);
    let mut out = json!({
        "TraceSummaries": summaries,
        "ApproximateTime": unix_now(),
        "TracesProcessedCount": processed,
    });
    if let Some(c) = next {
        out["NextToken"] = json!(c.encode());
    }
    Ok(out)
}

/// The traces named by `ids`, each once (in first-mention order), while their
/// store sizes add up to at most `budget` bytes (the first trace found is
/// returned whatever its size, so a client asking for the rest again always
/// progresses). Unknown ids, and every id from the first trace over the
/// budget on, come back as unprocessed.
pub fn batch<'s, 'q>(
    store: &'s Store,
    ids: &[&'q str],
    budget: usize,
) -> (Vec<&'s Trace>, Vec<&'q str>) {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut unprocessed = Vec::new();
    let mut bytes = 0usize;
    for &id in ids {
        if !seen.insert(id) {
            continue;
        }
        let Some(t) = store.get(id) else {
            unprocessed.push(id);
            continue;
        };
        bytes = bytes.saturating_add(t.approx_bytes());
        if bytes > budget && !found.is_empty() {
            unprocessed.push(id);
            // Later traces are not returned either, even small ones: the caller
            // asks again for the unprocessed ids in order.
            bytes = usize::MAX;
            continue;
        }
        found.push(t);
    }
    (found, unprocessed)
}

/// One trace as `BatchGetTraces` shows it: `segments` gives its documents.
pub fn trace_json(t: &Trace, segments: impl FnOnce(&Trace) -> Vec<(String, Arc<str>)>) -> Value {
    let (start, end) = t.time_range();
    let segments: Vec<Value> = segments(t)
        .into_iter()
        .map(|(id, doc)| json!({"Id": id, "Document": &*doc}))
        .collect();
    json!({
        "Id": &*t.id,
        "Duration": end - start,
        "LimitExceeded": false,
        "Segments": segments,
    })
}

/// The ids of a `TraceIds` member: required, at most [`MAX_BATCH_IDS`].
pub fn trace_ids<'a>(m: &Members<'a>) -> Result<Vec<&'a str>, ApiError> {
    let ids = m.required("TraceIds", Members::strings)?;
    if ids.len() > MAX_BATCH_IDS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_BATCH_IDS} TraceIds per call"
        )));
    }
    Ok(ids)
}

/// `POST /Traces`: each trace's segments re-serialised, streamed
/// subsegments merged and inferred segments added, as the service does.
pub fn batch_get_traces(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    next_token(&m, |_| None::<()>)?;
    let ids = trace_ids(&m)?;
    let store = app.store();
    let (found, unprocessed) = batch(&store, &ids, MAX_BATCH_BYTES);
    let traces: Vec<Value> = found
        .iter()
        .map(|t| {
            trace_json(t, |t| {
                documents::segments(t)
                    .into_iter()
                    .map(|(id, doc)| (id, Arc::from(doc)))
                    .collect()
            })
        })
        .collect();
    drop(store);
    Ok(json!({"Traces": traces, "UnprocessedTraceIds": unprocessed}))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::{Cursor, batch, in_sample, trace_id_time};
    use crate::state::store::Store;

    fn store_with(traces: &[(&str, usize)]) -> Store {
        let mut s = Store::new(100, 1 << 24);
        for (t, size) in traces {
            let raw = json!({"trace_id": t, "id": "aaaaaaaaaaaaaaaa", "name": "x".repeat(*size)})
                .to_string();
            let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
            s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
        }
        s
    }

    #[test]
    fn repeated_ids_are_returned_once() {
        let s = store_with(&[("a", 10), ("b", 10)]);
        let ids = ["b", "a", "b", "b", "nope", "a", "nope"];
        let (found, unprocessed) = batch(&s, &ids, usize::MAX);
        let found: Vec<&str> = found.iter().map(|t| &*t.id).collect();
        assert_eq!(found, ["b", "a"]);
        assert_eq!(unprocessed, ["nope"]);
    }

    #[test]
    fn traces_past_the_byte_budget_are_unprocessed() {
        let s = store_with(&[("a", 3_000), ("b", 3_000), ("c", 10), ("d", 3_000)]);
        let size = |id: &str| s.get(id).map_or(0, |t| t.approx_bytes());
        let budget = size("a") + size("b") + size("c");
        let ids = ["a", "b", "gone", "d", "c"];
        let (found, unprocessed) = batch(&s, &ids, budget);
        let found: Vec<&str> = found.iter().map(|t| &*t.id).collect();
        assert_eq!(found, ["a", "b"]);
        assert_eq!(unprocessed, ["gone", "d", "c"]);
        // A trace bigger than the budget on its own still comes back when asked first.
        let (found, unprocessed) = batch(&s, &["d", "a"], 10);
        let found: Vec<&str> = found.iter().map(|t| &*t.id).collect();
        assert_eq!(found, ["d"]);
        assert_eq!(unprocessed, ["a"]);
    }

    #[test]
    fn tokens_and_times() {
        let c = Cursor {
            start: 1_796_619_600.25,
            id: "1-6b1bd0d0-000000000000000000000001".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "v1.",
            "v1.zz.x",
            "v2.0000000000000000.x",
            "v1.7ff0000000000000.x",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        assert_eq!(
            trace_id_time("1-5759e988-bd862e3fe1be46a994272793"),
            Some(1_465_510_280.0)
        );
        assert_eq!(trace_id_time("5759e988"), None);
        let kept = (0..10_000)
            .filter(|i| in_sample(&format!("1-00000000-{i:024x}"), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }
}
