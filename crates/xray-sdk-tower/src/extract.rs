//! The axum extractor for the request's segment.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use xray_sdk::Context;

/// The request's segment, for annotations, metadata and subsegments in an axum handler.
///
/// Dereferences to [`xray_sdk::Context`]. Requires [`XRayLayer`](crate::XRayLayer) around
/// the route; without it, extraction fails with [`MissingXRayContext`] (a 500 response). Use
/// `Option<XRayContext>` to make it optional.
///
/// ```
/// use axum::{Router, routing::get};
/// use xray_sdk::Record;
/// use xray_sdk_tower::{XRayContext, XRayLayer};
///
/// async fn checkout(segment: XRayContext) -> &'static str {
///     segment.annotate("customer_tier", "gold");
///     segment.put_metadata("cart_items", 3);
///     "ok"
/// }
///
/// let app: Router = Router::new()
///     .route("/checkout", get(checkout))
///     .layer(XRayLayer::new(xray_sdk::Recorder::disabled()));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct XRayContext(pub Context);

impl std::ops::Deref for XRayContext {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.0
    }
}

impl From<XRayContext> for Context {
    fn from(c: XRayContext) -> Context {
        c.0
    }
}

fn find(parts: &Parts) -> Option<XRayContext> {
    parts
        .extensions
        .get::<Context>()
        .cloned()
        .or_else(Context::current)
        .map(XRayContext)
}

impl<S: Send + Sync> FromRequestParts<S> for XRayContext {
    type Rejection = MissingXRayContext;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        find(parts).ok_or(MissingXRayContext)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for XRayContext {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(find(parts))
    }
}

/// Rejection of [`XRayContext`] when the request did not pass through
/// [`XRayLayer`](crate::XRayLayer); responds with 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingXRayContext;

impl fmt::Display for MissingXRayContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no X-Ray segment for this request: add xray_sdk_tower::XRayLayer to the router",
        )
    }
}

impl std::error::Error for MissingXRayContext {}

impl IntoResponse for MissingXRayContext {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
