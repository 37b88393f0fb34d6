//! HTTP routes: the daemon's sampling API on the TCP port, and the JSON API
//! plus the UI on the UI port. See the crate README for the documented API.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::document::SmallStr;
use crate::graph;
use crate::query::{Params, QueryError};
use crate::server::{App, unix_now};
use crate::store::Store;
use crate::summary::{Filter, Summary};
use crate::timeline;

/// Most trace IDs accepted by one `GET /api/Traces` call.
pub const MAX_BATCH_IDS: usize = 100;
/// Most stored bytes (as the store counts them) one `GET /api/Traces` call
/// returns; the traces past it are listed in `UnprocessedTraceIds`.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

type Shared = State<Arc<App>>;

/// Routes served on the TCP (sampling) address.
pub fn sampling_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/GetSamplingRules", post(get_sampling_rules))
        .route("/SamplingTargets", post(sampling_targets))
        .fallback(|| async {
            aws_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "only POST /GetSamplingRules and POST /SamplingTargets are served locally",
            )
        })
        .with_state(app)
}

/// Routes served on the UI address.
pub fn ui_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/TraceSummaries", get(trace_summaries))
        .route("/api/Traces", get(batch_get_traces))
        .route("/api/ServiceGraph", get(service_graph))
        .route("/api/Timeline", get(trace_timeline))
        .route("/api/stats", get(stats))
        .route("/api/validation", get(validation))
        .merge(crate::ui::routes())
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(app)
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"__type": kind, "Message": message}))).into_response()
}

fn bad(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        bad(StatusCode::BAD_REQUEST, &self.0)
    }
}

async fn get_sampling_rules(State(app): Shared, body: Bytes) -> Response {
    match app.sampler().get_sampling_rules(&body) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(e.body()),
        )
            .into_response(),
    }
}

async fn sampling_targets(State(app): Shared, body: Bytes) -> Response {
    match app.sampler().sampling_targets(&body, unix_now()) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(e.body()),
        )
            .into_response(),
    }
}

/// Summaries matching a raw query string, newest first.
pub fn trace_summaries_json(app: &App, raw: &str) -> Result<Value, QueryError> {
    let filter = Filter::parse(raw)?;
    let store = app.store();
    let mut processed = 0usize;
    let mut hits: Vec<Summary> = store
        .traces()
        .map(|t| {
            processed += 1;
            Summary::of(t)
        })
        .filter(|s| s.matches(&filter))
        .collect();
    drop(store);
    hits.sort_by(|a, b| b.start.total_cmp(&a.start).then_with(|| a.id.cmp(&b.id)));
    let total = hits.len();
    hits.truncate(filter.limit);
    Ok(json!({
        "TraceSummaries": hits.iter().map(Summary::to_json).collect::<Vec<_>>(),
        "ApproximateTime": unix_now(),
        "TracesProcessedCount": processed,
        "MatchedCount": total,
    }))
}

async fn trace_summaries(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    match trace_summaries_json(&app, q.as_deref().unwrap_or("")) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn batch_get_traces(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or(""), &["ids"]) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(ids) = params.get("ids") else {
        return bad(
            StatusCode::BAD_REQUEST,
            "ids (comma-separated trace IDs) is required",
        );
    };
    let ids: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.len() > MAX_BATCH_IDS {
        return bad(
            StatusCode::BAD_REQUEST,
            &format!("at most {MAX_BATCH_IDS} ids per call"),
        );
    }
    let store = app.store();
    let (found, unprocessed) = batch(&store, &ids, MAX_BATCH_BYTES);
    drop(store);
    let traces: Vec<Value> = found
        .iter()
        .map(|t| {
            let segments: Vec<Value> = t
                .segments
                .iter()
                .map(|(id, raw)| json!({"Id": id, "Document": &**raw}))
                .collect();
            json!({
                "Id": &*t.id,
                "Duration": t.duration,
                "LimitExceeded": false,
                "Segments": segments,
            })
        })
        .collect();
    Json(json!({"Traces": traces, "UnprocessedTraceIds": unprocessed})).into_response()
}

/// One trace of a `GET /api/Traces` answer, copied out of the store.
struct BatchTrace {
    id: Arc<str>,
    duration: f64,
    /// Document ids and texts, by id.
    segments: Vec<(SmallStr, Arc<str>)>,
}

/// The traces named by `ids`, each once (in first-mention order), while their
/// store sizes add up to at most `budget` bytes (the first trace found is
/// returned whatever its size, so a client asking for the rest again always
/// progresses). Unknown ids, and every id from the first trace over the
/// budget on, come back as unprocessed. Only `Arc`s are cloned, so the store
/// lock is held briefly.
fn batch<'q>(store: &Store, ids: &[&'q str], budget: usize) -> (Vec<BatchTrace>, Vec<&'q str>) {
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
        let (start, end) = t.time_range();
        let mut segments: Vec<(SmallStr, Arc<str>)> = t
            .docs
            .values()
            .map(|d| (d.id.clone(), d.raw.clone()))
            .collect();
        segments.sort_by(|a, b| a.0.cmp(&b.0));
        found.push(BatchTrace {
            id: t.id.clone(),
            duration: end - start,
            segments,
        });
    }
    (found, unprocessed)
}

async fn service_graph(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or(""), &["start", "end"]) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (start, end) = match (params.number("start"), params.number("end")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let store = app.store();
    let in_range = |t: &&crate::store::Trace| {
        let s = t.time_range().0;
        start.is_none_or(|v| s >= v) && end.is_none_or(|v| s <= v)
    };
    let services = graph::build(store.traces().filter(in_range));
    drop(store);
    Json(json!({
        "Services": services,
        "StartTime": start,
        "EndTime": end.unwrap_or_else(unix_now),
        "ContainsOldGroupVersions": false,
    }))
    .into_response()
}

async fn trace_timeline(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or(""), &["id"]) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(id) = params.get("id") else {
        return bad(StatusCode::BAD_REQUEST, "id (a trace ID) is required");
    };
    match app.store().get(id) {
        Some(t) => Json(timeline::build(t)).into_response(),
        None => bad(
            StatusCode::NOT_FOUND,
            "no such trace (never received, or evicted)",
        ),
    }
}

/// The `/api/stats` document.
pub fn stats_json(app: &App) -> Value {
    let store = app.store();
    let (max_traces, max_bytes) = store.caps();
    let docs: usize = store.traces().map(|t| t.docs.len()).sum();
    let v = json!({
        "StartedAt": app.started_at(),
        "Intake": app.intake.snapshot(),
        "UdpAddress": app.udp_addr().to_string(),
        "UdpReceiveBufferBytes": app.udp_recv_buffer(),
        "ProcessRssBytes": process_rss_bytes(),
        "Store": {
            "Traces": store.len(),
            "Documents": docs,
            "ApproxBytes": store.approx_bytes(),
            "MaxTraces": max_traces,
            "MaxBytes": max_bytes,
            "Counters": store.counters(),
        },
        "Validation": store.validation(),
    });
    drop(store);
    let sampler = app.sampler();
    let mut v = v;
    v["Sampling"] = json!({
        "Rules": sampler.rules(),
        "Statistics": sampler.stats(),
    });
    v
}

/// Resident set size of this process (Linux only; `None` elsewhere).
fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

async fn stats(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = Params::parse(q.as_deref().unwrap_or(""), &[]) {
        return e.into_response();
    }
    Json(stats_json(&app)).into_response()
}

/// The `/api/validation` document for a raw query string.
pub fn validation_json(app: &App, raw: &str) -> Result<Value, QueryError> {
    let params = Params::parse(raw, &["limit", "trace_id"])?;
    let limit = params.limit(200)?;
    let only = params.get("trace_id");
    let store = app.store();
    let mut traces: Vec<_> = store
        .traces()
        .filter(|t| only.is_none_or(|id| *t.id == *id))
        .filter(|t| t.problem_count() > 0)
        .collect();
    traces.sort_by(|a, b| b.first_seen.total_cmp(&a.first_seen));
    let mut problems = Vec::new();
    'outer: for t in traces {
        let mut docs: Vec<_> = t.docs.values().collect();
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let doc_problems = docs.iter().flat_map(|d| {
            let name = d.node.name.to_value();
            d.problems
                .iter()
                .map(move |p| (d.id.as_str(), name.clone(), p, "document"))
        });
        let trace_problems = t
            .trace_problems
            .iter()
            .map(|(id, p)| (id.as_str(), Value::Null, p, "trace"));
        for (doc_id, name, p, scope) in doc_problems.chain(trace_problems) {
            if problems.len() >= limit {
                break 'outer;
            }
            problems.push(json!({
                "TraceId": &*t.id, "DocumentId": doc_id, "Name": name,
                "Scope": scope, "Code": p.code, "Message": p.message,
            }));
        }
    }
    let unfiled: Vec<_> = store.unfiled().rev().take(limit).cloned().collect();
    Ok(json!({
        "Counts": store.validation(),
        "Problems": problems,
        "Unfiled": unfiled,
    }))
}

async fn validation(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    match validation_json(&app, q.as_deref().unwrap_or("")) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::batch;
    use crate::store::Store;

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
}
