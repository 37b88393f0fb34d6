//! The X-Ray API on the UI port, as the AWS CLI, boto3 and the AWS SDKs
//! speak it (REST-JSON: a `POST` with a JSON body to a fixed path per
//! operation). The SigV4 `Authorization` header is not checked.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::post;
use serde_json::json;

use crate::ops::{self, ApiError, OpResult};
use crate::state::App;

use super::aws_json::respond;
use super::peers::requester;

type Shared = State<Arc<App>>;

/// An operation that only needs the state and the body.
type Op = fn(&App, &[u8]) -> OpResult;

/// `(path, operation)` for every operation answered without the caller's
/// address.
const OPERATIONS: [(&str, Op); 11] = [
    ("/TraceSegments", ops::traces::put_trace_segments),
    ("/TraceSummaries", ops::traces::get_trace_summaries),
    ("/Traces", ops::traces::batch_get_traces),
    ("/TraceGraph", ops::services::get_trace_graph),
    ("/ServiceGraph", ops::services::get_service_graph),
    (
        "/TimeSeriesServiceStatistics",
        ops::services::get_time_series_service_statistics,
    ),
    ("/GetSamplingRules", ops::sampling::get_sampling_rules),
    (
        "/SamplingStatisticSummaries",
        ops::sampling::get_sampling_statistic_summaries,
    ),
    ("/CreateSamplingRule", ops::sampling::create_sampling_rule),
    ("/UpdateSamplingRule", ops::sampling::update_sampling_rule),
    ("/DeleteSamplingRule", ops::sampling::delete_sampling_rule),
];

/// The X-Ray API routes.
pub fn routes() -> Router<Arc<App>> {
    let mut r = Router::new()
        .route("/SamplingTargets", post(sampling_targets))
        // The daemon sends its own counters here; there is nothing to keep.
        .route(
            "/TelemetryRecords",
            post(|| async { respond(Ok(json!({}))) }),
        );
    for (path, op) in OPERATIONS {
        r = r.route(
            path,
            post(move |State(app): Shared, body: Bytes| async move { respond(op(&app, &body)) }),
        );
    }
    r
}

async fn sampling_targets(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let owner = requester(&app, peer, &body).await;
    respond(ops::sampling::get_sampling_targets(&app, &body, owner))
}

/// The answer to a `POST` to any other path.
pub fn unknown_operation(path: &str) -> Response {
    respond(Err(ApiError::unknown_operation(format!(
        "xray-local does not serve POST {path}; it serves {}, /SamplingTargets and /TelemetryRecords",
        OPERATIONS
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", ")
    ))))
}
