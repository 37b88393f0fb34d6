//! # xray-sdk-aws
//!
//! AWS X-Ray instrumentation for the AWS SDK for Rust: [`XRayInterceptor`] records every call
//! a client makes as an `aws` subsegment of the current segment, and sends the trace on in
//! the `X-Amzn-Trace-Id` header so services that trace (Lambda, SQS, API Gateway, ...) join it.
//!
//! Attach it once, on the client's configuration; one interceptor serves every call of that
//! client, concurrent ones included:
//!
//! ```no_run
//! use xray_sdk::FutureExt;
//! use xray_sdk_aws::XRayInterceptor;
//!
//! # async fn demo(sdk_config: aws_types::SdkConfig, recorder: xray_sdk::Recorder) {
//! let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
//!     .interceptor(XRayInterceptor::new())
//!     .build();
//! let client = aws_sdk_dynamodb::Client::from_conf(conf);
//!
//! let segment = recorder.segment("orders").begin();
//! // A `DynamoDB` subsegment with aws.operation = "GetItem", aws.table_name = "orders", ...
//! let item = client
//!     .get_item()
//!     .table_name("orders")
//!     .key("id", aws_sdk_dynamodb::types::AttributeValue::S("42".into()))
//!     .send()
//!     .in_context(segment.context())
//!     .await;
//! segment.end();
//! # }
//! ```
//!
//! Works with every `aws-sdk-*` client: they all take an interceptor through their config
//! builder's `interceptor(..)` (or per call: `client.get_item().customize().interceptor(..)`).
//!
//! ## What a call records
//!
//! One subsegment per operation, covering all its retry attempts, begun under the context
//! that is current when the call starts ([`xray_sdk::Context::current`]):
//!
//! | field | value |
//! |---|---|
//! | `name` | the service as the X-Ray console shows it: `DynamoDB`, `S3`, `SQS`, ... |
//! | `namespace` | `aws` |
//! | `aws.operation` | `GetItem`, `PutItem`, ... |
//! | `aws.region` | the client's region |
//! | `aws.request_id` | the `x-amzn-requestid` (or `x-amz-request-id`) response header |
//! | `aws.id_2` | the `x-amz-id-2` response header (S3) |
//! | `aws.retries` | attempts made minus one |
//! | `http.response` | the final status and content length |
//! | DynamoDB parameters | the official SDKs' whitelist: `table_name`, `table_names`, `consumed_capacity`, `count`, ... |
//!
//! Errors set the flags by X-Ray's definitions: 4xx `error`, 429 and throttling error codes
//! (`ThrottlingException`, `ProvisionedThroughputExceededException`, ...) `throttle` (with
//! `error`), 5xx and transport failures `fault`. A service error is recorded in `cause` with
//! its error code and message, marked `remote`. So a DynamoDB 400
//! (`ResourceNotFoundException`) sets `error` only. The official SDKs differ here: the Python
//! (2.15) and Node (3.12) SDKs set `error` and `fault` for it, because recording the
//! exception sets `fault` whatever the status; this crate keeps `fault` for failures on the
//! service's side, so a caller's mistake does not show as a fault in the service map
//! (docs/ARCHITECTURE.md, choices where the official SDKs disagree). The flags follow the
//! call's final outcome, as in the official SDKs: a call that was throttled and then
//! succeeded on a retry shows it in `aws.retries` and carries no `throttle` or `error` flag.
//!
//! Outside any segment a call is not recorded and no header is sent; the context-missing
//! strategy decides whether that is logged. Whatever it finds, the interceptor never fails
//! a call.
//!
//! AWS services read `X-Amzn-Trace-Id` only: calls carry that header alone, also when the
//! recorder propagates W3C `traceparent` on other HTTP calls
//! ([`xray_sdk::Context::propagates_traceparent`]). A trace that came in through
//! `traceparent` goes on to AWS in the X-Ray form of the same IDs.
//!
//! ## What a call costs
//!
//! While the call runs, the interceptor only opens the subsegment, keeps the call's facts as
//! they are (the SDK's metadata, the region, reference-counted clones of the serialized
//! request and of the response body) and sets the trace header. The `aws` block, parameters
//! included, is written later by the emitter's thread from those facts. Bodies over 64 KiB
//! are read during the call instead, so that tracing never keeps a large payload alive.
//!
//! ## Features
//!
//! None: everything is on by default, and the crate adds no optional dependency.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - `xray-sdk-aws` (this crate) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
mod fuzz_tests;
mod params;
mod remote_error;

use std::borrow::Cow;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::Region;
use xray_sdk::deferred::{AwsFieldWriter, DeferredFields};
use xray_sdk::{Cause, Context, ContextMissing, Entity, Exception, Namespace, Patch, Record};

use crate::params::OperationParams;

/// The name of the header that carries the trace (as a `HeaderName`, which the SDK's
/// headers take without parsing).
const TRACE_HEADER: http::HeaderName = http::HeaderName::from_static("x-amzn-trace-id");

/// An interceptor for AWS SDK clients that records each call as an X-Ray subsegment and
/// propagates the trace header. See the [crate documentation](crate).
///
/// It holds no per-call state (that lives in each call's own `ConfigBag`), so one instance,
/// attached once to a client's configuration, serves any number of concurrent calls.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
#[must_use]
pub struct XRayInterceptor {
    context_missing: Option<ContextMissing>,
}

impl XRayInterceptor {
    /// A new interceptor. Subsegments go to the recorder of the segment they are part of.
    pub fn new() -> Self {
        XRayInterceptor::default()
    }

    /// The context-missing policy for calls made outside any segment or subsegment. As for
    /// every X-Ray setting, `AWS_XRAY_CONTEXT_MISSING` wins over it when set (see
    /// [`ContextMissing`] for the rule); without either the policy is `LOG_ERROR`, whether
    /// or not a global recorder is installed.
    /// The call itself always proceeds, untraced: with `RUNTIME_ERROR` the problem is logged
    /// at error level rather than failing an AWS call the application depends on.
    ///
    /// ```
    /// use xray_sdk::ContextMissing;
    /// use xray_sdk_aws::XRayInterceptor;
    ///
    /// let interceptor = XRayInterceptor::new().context_missing(ContextMissing::IgnoreError);
    /// # let _ = interceptor;
    /// ```
    pub fn context_missing(mut self, policy: ContextMissing) -> Self {
        self.context_missing = Some(policy);
        self
    }
}

/// Per-call state, in the call's `ConfigBag` interceptor layer.
#[derive(Debug)]
struct CallState {
    /// The context that was current when the call started.
    parent: Context,
    /// The call's subsegment, once its name is known.
    subsegment: Option<Entity>,
    /// What the subsegment's `aws` block is written from (sampled calls only); boxed once,
    /// when the subsegment begins, and handed over as it is when it ends.
    facts: Option<Box<CallFacts>>,
}

impl Drop for CallState {
    /// A call dropped before it finished (its future was cancelled) still records what it
    /// was.
    fn drop(&mut self) {
        if let Some(sub) = self.subsegment.take() {
            let facts = self.facts.take();
            sub.end_with(|e| {
                if let Some(facts) = facts {
                    e.add_deferred_fields(facts);
                }
            });
        }
    }
}

/// Bodies larger than this are read for parameters while the call runs rather than kept
/// until the segment is sent, so that tracing never holds on to large payloads.
const DEFERRED_BODY_LIMIT: usize = 64 * 1024;

/// The facts of one call, kept as they are (reference-counted bodies) and turned into the
/// rest of the `aws` block on the emitter's thread when the subsegment is written: request
/// IDs, retries and the whitelisted parameters. (The operation and the region are typed
/// fields of the subsegment, set when it begins.)
#[derive(Debug, Default)]
struct CallFacts {
    params: Option<&'static OperationParams>,
    /// The serialized request, for the request parameters.
    request: Option<SdkBody>,
    /// The final response's body, for the response parameters (successful calls only).
    response: Option<SdkBody>,
    request_id: Option<String>,
    id_2: Option<String>,
    retries: Option<u32>,
}

impl DeferredFields for CallFacts {
    fn aws(&self, out: &mut AwsFieldWriter<'_>) {
        if let Some(id) = &self.request_id {
            out.str("request_id", id);
        }
        if let Some(id2) = &self.id_2 {
            out.str("id_2", id2);
        }
        if let Some(retries) = self.retries {
            out.u64("retries", u64::from(retries));
        }
        let Some(op) = self.params else {
            return;
        };
        for (body, wanted) in [(&self.request, op.request), (&self.response, op.response)] {
            if let Some(bytes) = body.as_ref().and_then(SdkBody::bytes) {
                for (key, value) in params::pick(bytes, wanted) {
                    match value {
                        params::Picked::Value(v) => out.value(key, &v),
                        params::Picked::Raw(raw) => out.json(key, &raw),
                    }
                }
            }
        }
    }
}

/// A body to read parameters from later: a cheap clone of an in-memory body up to
/// [`DEFERRED_BODY_LIMIT`]; `None` (read it now) otherwise.
fn keep_body(body: &SdkBody) -> Option<SdkBody> {
    if body.bytes()?.len() > DEFERRED_BODY_LIMIT {
        return None;
    }
    body.try_clone()
}

impl Storable for CallState {
    type Storer = StoreReplace<Self>;
}

/// The service as the X-Ray console names it. The SDK's service IDs are already spelled that
/// way (`DynamoDB`, `S3`); older generated clients used lowercase IDs, mapped here.
fn segment_name(service: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "DynamoDB",
        "S3",
        "SQS",
        "SNS",
        "Lambda",
        "Kinesis",
        "STS",
        "KMS",
        "EC2",
        "ECS",
        "EventBridge",
        "SFN",
        "SES",
        "SSM",
        "Firehose",
        "CloudWatch",
        "Secrets Manager",
        "XRay",
    ];
    if let Some(k) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(service)) {
        return Cow::Borrowed(k);
    }
    if service.is_empty() {
        return Cow::Borrowed("AWS");
    }
    let mut chars = service.chars();
    match chars.next() {
        Some(c) if c.is_lowercase() => Cow::Owned(c.to_uppercase().chain(chars).collect()),
        _ => Cow::Owned(service.to_owned()),
    }
}

/// The X-Ray service's own sampling and ingestion calls, which are never traced.
fn is_xray_internal(meta: &Metadata) -> bool {
    meta.service().eq_ignore_ascii_case("xray")
        && matches!(
            meta.name(),
            "GetSamplingRules" | "GetSamplingTargets" | "PutTraceSegments"
        )
}

/// Begins the call's subsegment under its parent if not done yet: at the first hook where
/// `Metadata` is known.
fn ensure_begun(cfg: &mut ConfigBag) {
    let meta = match cfg.load::<CallState>() {
        Some(state) if state.subsegment.is_none() => cfg.load::<Metadata>().cloned(),
        _ => return,
    };
    if meta.as_ref().is_some_and(is_xray_internal) {
        cfg.interceptor_state().unset::<CallState>();
        return;
    }
    let region = cfg.load::<Region>().cloned();
    let Some(state) = cfg.get_mut_from_interceptor_state::<CallState>() else {
        return;
    };
    let name = meta
        .as_ref()
        .map_or(Cow::Borrowed("AWS"), |m| segment_name(m.service()));
    let sub = state.parent.begin_subsegment_with(name, |e| {
        e.set_namespace(Namespace::Aws);
        if let Some(m) = &meta {
            e.set_aws_operation(m.name());
        }
        if let Some(r) = &region {
            e.set_aws_region(r.as_ref());
        }
    });
    if sub.is_sampled() {
        state.facts = Some(Box::new(CallFacts {
            params: meta
                .as_ref()
                .and_then(|m| params::lookup(m.service(), m.name())),
            ..CallFacts::default()
        }));
    }
    state.subsegment = Some(sub);
}

/// Records what the final response and result say, then ends the subsegment. Everything is
/// read and built first, then written and the subsegment ended under one lock.
fn finish(ctx: &FinalizerInterceptorContextRef<'_>, cfg: &mut ConfigBag) {
    let attempts = cfg.load::<RequestAttempts>().map(RequestAttempts::attempts);
    let Some(state) = cfg.get_mut_from_interceptor_state::<CallState>() else {
        return;
    };
    let Some(sub) = state.subsegment.take() else {
        return;
    };
    let Some(mut facts) = state.facts.take() else {
        // Not sampled: nothing to record.
        return;
    };
    let response = ctx.response();
    facts.retries = attempts.map(|a| a.saturating_sub(1));
    // Parameters of bodies too large to keep, read now.
    let mut picked_now = Vec::new();
    let mut http = None;
    // From the final outcome only, as the official SDKs do: a call that was throttled and
    // then succeeded on a retry shows it in `retries`, not as a throttled error.
    let mut throttled = false;
    if let Some(resp) = response {
        // One pass over the few response headers (names are lowercase) rather than a
        // hashed lookup per name.
        let (mut amzn_id, mut amz_id, mut id_2, mut length) = (None, None, None, None);
        for (name, value) in resp.headers().iter() {
            match name {
                "x-amzn-requestid" => amzn_id = Some(value),
                "x-amz-request-id" => amz_id = Some(value),
                "x-amz-id-2" => id_2 = Some(value),
                "content-length" => length = value.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        facts.request_id = amzn_id.or(amz_id).map(str::to_owned);
        facts.id_2 = id_2.map(str::to_owned);
        let length = length.or_else(|| resp.body().content_length());
        http = Some((resp.status().as_u16(), length));
    }
    let mut exception = None;
    let mut flag = None;
    match ctx.output_or_error() {
        Some(Ok(_)) => {
            if let (Some(op), Some(resp)) = (facts.params, response) {
                facts.response = keep_body(resp.body());
                if facts.response.is_none()
                    && let Some(body) = resp.body().bytes()
                {
                    picked_now = params::pick(body, op.response);
                }
            }
        }
        Some(Err(err)) => {
            if let Some(op_err) = err.as_operation_error() {
                // The service answered with an error: its code and message, marked remote.
                let remote = response.map(remote_error::read).unwrap_or_default();
                let display = op_err.to_string();
                let code = remote.code.unwrap_or_else(|| {
                    display
                        .split(':')
                        .next()
                        .map_or_else(String::new, |s| s.trim().to_owned())
                });
                if remote_error::is_throttling_code(&code) {
                    throttled = true;
                }
                let message = remote.message.unwrap_or(display);
                exception = Some(Exception::new(message, code).remote(true));
                match response.map(|r| r.status().as_u16()) {
                    Some(400..=599) => {}
                    // No HTTP status says which side failed: a modeled error is the caller's.
                    _ => flag = Some(Flag::Error),
                }
            } else {
                // Transport failure, timeout, or a response that could not be read: a fault
                // on the way to the service, recorded as a local error.
                flag = Some(Flag::Fault);
                let kind = if err.is_timeout_error() {
                    "TimeoutError"
                } else if err.is_connector_error() {
                    "ConnectorError"
                } else if err.is_response_error() {
                    "ResponseError"
                } else {
                    "SdkError"
                };
                let message = match std::error::Error::source(err) {
                    Some(source) => format!("{err}: {source}"),
                    None => err.to_string(),
                };
                exception = Some(Exception::new(message, kind));
            }
        }
        None => {}
    }
    let cause = exception.map(Cause::from_exception);
    sub.end_with(|e| {
        for (key, value) in picked_now {
            set_picked(e, key, value);
        }
        e.add_deferred_fields(facts);
        if let Some((status, length)) = http {
            e.set_http_response(status, length);
        }
        if let Some(cause) = cause {
            e.add_cause(cause);
        }
        match flag {
            Some(Flag::Error) => e.set_error(),
            Some(Flag::Fault) => e.set_fault(),
            None => {}
        }
        if throttled {
            e.set_throttle();
        }
    });
}

/// A flag that the outcome of a call sets, besides those its HTTP status implies.
#[derive(Debug, Clone, Copy)]
enum Flag {
    Error,
    Fault,
}

/// Sets a captured field on the subsegment: raw JSON text is copied, a built value is set.
fn set_picked(e: &Patch<'_>, key: &'static str, value: params::Picked) {
    match value {
        params::Picked::Value(v) => e.set_aws_field(key, v),
        params::Picked::Raw(raw) => e.set_aws_field(key, raw),
    }
}

impl Intercept for XRayInterceptor {
    fn name(&self) -> &'static str {
        "XRayInterceptor"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match Context::current() {
            Some(parent) => {
                cfg.interceptor_state().store_put(CallState {
                    parent,
                    subsegment: None,
                    facts: None,
                });
            }
            None => {
                let missing =
                    xray_sdk::remote::on_missing_context(self.context_missing, "AWS SDK call");
                if let Err(e) = missing {
                    // The interceptor cannot fail the call: report and go on untraced.
                    tracing::error!("{e}");
                }
            }
        }
        Ok(())
    }

    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ensure_begun(cfg);
        Ok(())
    }

    fn read_after_serialization(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(state) = cfg.get_mut_from_interceptor_state::<CallState>() else {
            return Ok(());
        };
        let (Some(facts), Some(sub)) = (&mut state.facts, &state.subsegment) else {
            return Ok(());
        };
        let Some(op) = facts.params.filter(|op| !op.request.is_empty()) else {
            return Ok(());
        };
        let body = ctx.request().body();
        facts.request = keep_body(body);
        if facts.request.is_none()
            && let Some(bytes) = body.bytes()
        {
            // Too large to keep until the segment is sent: read now.
            let fields = params::pick(bytes, op.request);
            if !fields.is_empty() {
                sub.update(|e| {
                    for (key, value) in fields {
                        set_picked(e, key, value);
                    }
                });
            }
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Runs after signing, on every attempt. SigV4 leaves X-Amzn-Trace-Id out of the
        // signature, so replacing it here (including a value the Lambda recursion detector set
        // before signing) keeps the signature valid.
        // Formatted per attempt (usually once) straight into the value the SDK stores.
        if let Some(state) = cfg.load::<CallState>()
            && let Some(sub) = &state.subsegment
            && let Err(e) = ctx
                .request_mut()
                .headers_mut()
                .try_insert(TRACE_HEADER, sub.downstream_header().to_header_value())
        {
            tracing::debug!(error = %e, "X-Amzn-Trace-Id not set");
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A call that failed before serialization never reached `read_before_serialization`.
        ensure_begun(cfg);
        finish(ctx, cfg);
        Ok(())
    }
}

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<XRayInterceptor>();
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_console_shows_them() {
        assert_eq!(segment_name("DynamoDB"), "DynamoDB");
        assert_eq!(segment_name("dynamodb"), "DynamoDB");
        assert_eq!(segment_name("s3"), "S3");
        assert_eq!(segment_name("Cognito Identity"), "Cognito Identity");
        assert_eq!(segment_name("bedrockruntime"), "Bedrockruntime");
        assert_eq!(segment_name(""), "AWS");
    }

    #[test]
    fn skips_xray_sampling_calls() {
        assert!(is_xray_internal(&Metadata::new("GetSamplingRules", "XRay")));
        assert!(!is_xray_internal(&Metadata::new(
            "GetTraceSummaries",
            "XRay"
        )));
        assert!(!is_xray_internal(&Metadata::new("GetItem", "DynamoDB")));
    }
}
