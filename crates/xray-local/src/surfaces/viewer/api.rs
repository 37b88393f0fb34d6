//! The viewer's JSON API under `/api/*` (GET, query strings): the trace
//! list with the viewer's extras, the timeline, the counters, validation,
//! the per-service request counts, and NDJSON export and import. See the
//! crate README for the documented API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::ops::sampling::rules_json;
use crate::ops::traces::{MAX_BATCH_BYTES, MAX_BATCH_IDS, batch, trace_json};
use crate::procfs;
use crate::state::{App, unix_now};
use crate::views::{graph, timeline};

use super::list::{self, ListError, ListQuery};
use super::query::{Params, QueryError};

/// Traces one export holds at most.
pub const MAX_EXPORT_TRACES: usize = 10_000;
/// Largest NDJSON body an import takes.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;
/// Rejected lines an import answer lists (the rest are counted).
const LISTED_REJECTIONS: usize = 20;

type Shared = State<Arc<App>>;

/// The `/api/*` routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/TraceSummaries", get(trace_summaries))
        .route("/api/Traces", get(batch_get_traces))
        .route("/api/ServiceGraph", get(service_graph))
        .route("/api/Timeline", get(trace_timeline))
        .route("/api/stats", get(stats))
        .route("/api/validation", get(validation))
        .route("/api/services", get(services))
        .route("/api/export", get(export))
        .route(
            "/api/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
}

fn bad(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        bad(StatusCode::BAD_REQUEST, &self.0)
    }
}

impl IntoResponse for ListError {
    fn into_response(self) -> Response {
        match self {
            ListError::Query(e) => e.into_response(),
            // The position lets the viewer mark the place in its filter box.
            ListError::Filter(e) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string(), "position": e.position, "field": "filter"})),
            )
                .into_response(),
        }
    }
}

async fn trace_summaries(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    match list::trace_summaries_json(&app, q.as_deref().unwrap_or("")) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Each trace's documents as received (streamed subsegments are entries of
/// their own).
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
    let traces: Vec<Value> = found
        .iter()
        .map(|t| {
            trace_json(t, |t| {
                let mut docs: Vec<(String, Arc<str>)> = t
                    .docs
                    .values()
                    .map(|d| (d.id.to_string(), d.raw.clone()))
                    .collect();
                docs.sort_by(|a, b| a.0.cmp(&b.0));
                docs
            })
        })
        .collect();
    drop(store);
    Json(json!({"Traces": traces, "UnprocessedTraceIds": unprocessed})).into_response()
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
    let in_range = |t: &&crate::state::store::Trace| {
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
    match app.store().get(id.trim()) {
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
    let mut v = json!({
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
    let statistics = app.sampler().stats();
    v["Sampling"] = json!({
        "Rules": rules_json(app),
        "Statistics": statistics,
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

/// Requests seen and sampled per service, as the SDKs reported them.
async fn services(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = Params::parse(q.as_deref().unwrap_or(""), &[]) {
        return e.into_response();
    }
    // Owner lookups read /proc: off the async workers.
    let view = tokio::task::spawn_blocking(move || {
        app.clients().per_service(unix_now(), &procfs::socket_owner)
    })
    .await
    .unwrap_or_default();
    Json(json!({ "Services": view })).into_response()
}

/// The documents of the traces the list query selects, one JSON document a
/// line, as received: the format `/api/import` reads back.
async fn export(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let q = match ListQuery::parse(q.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let (hits, _, _) = list::select(&app, &q);
    let mut out = String::new();
    let store = app.store();
    for s in hits.iter().take(MAX_EXPORT_TRACES) {
        let Some(t) = store.get(&s.id) else { continue };
        for d in t.documents_in_order() {
            // One line each: documents as received may hold newlines.
            match serde_json::from_str::<Value>(&d.raw) {
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => continue,
            }
            out.push('\n');
        }
    }
    drop(store);
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"xray-local-traces.ndjson\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// Stores each line of an NDJSON body as if it had arrived over UDP.
async fn import(State(app): Shared, body: Bytes) -> Response {
    let mut accepted = 0u64;
    let mut with_problems = 0u64;
    let mut rejected = Vec::new();
    let mut rejected_count = 0u64;
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match app.ingest_document(line) {
            Ok((_, problems)) => {
                accepted += 1;
                with_problems += u64::from(!problems.is_empty());
            }
            Err(r) => {
                rejected_count += 1;
                if rejected.len() < LISTED_REJECTIONS {
                    rejected.push(json!({"Line": i + 1, "Reason": r.as_str()}));
                }
            }
        }
    }
    Json(json!({
        "Accepted": accepted,
        "WithProblems": with_problems,
        "Rejected": rejected_count,
        "RejectedLines": rejected,
    }))
    .into_response()
}
