//! The daemon's sampling API on the TCP port: `POST /GetSamplingRules` and
//! `POST /SamplingTargets`, as the X-Ray daemon proxies them for the SDKs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::post;

use crate::ops::{self, ApiError};
use crate::state::App;

use super::aws_json::respond;
use super::peers::requester;

/// Routes served on the TCP (sampling) address.
pub fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/GetSamplingRules", post(get_sampling_rules))
        .route("/SamplingTargets", post(sampling_targets))
        .fallback(|| async {
            respond(Err(ApiError::unknown_operation(
                "only POST /GetSamplingRules and POST /SamplingTargets are served on this port",
            )))
        })
        .with_state(app)
}

async fn get_sampling_rules(State(app): State<Arc<App>>, body: Bytes) -> Response {
    respond(ops::sampling::get_sampling_rules(&app, &body))
}

async fn sampling_targets(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let owner = requester(&app, peer, &body).await;
    respond(ops::sampling::get_sampling_targets(&app, &body, owner))
}
