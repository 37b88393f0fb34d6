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
//! let segment = recorder.begin_segment("orders");
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
//! Errors set the flags as the official SDKs do: 4xx `error`, 429 and throttling error codes
//! (`ThrottlingException`, `ProvisionedThroughputExceededException`, ...) `throttle`, 5xx and
//! transport failures `fault`. A service error is recorded in `cause` with its error code and
//! message, marked `remote`. A call that was throttled and then succeeded on a retry keeps
//! the `throttle` flag.
//!
//! Outside any segment a call is not recorded and no header is sent; the context-missing
//! strategy decides whether that is logged. Whatever it finds, the interceptor never fails
//! a call.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod params;
mod remote_error;

use std::borrow::Cow;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::Region;
use xray_sdk::{Cause, Context, Exception, Namespace, Subsegment};

use crate::params::OperationParams;

/// The name of the header that carries the trace.
const TRACE_HEADER: &str = "x-amzn-trace-id";

/// An interceptor for AWS SDK clients that records each call as an X-Ray subsegment and
/// propagates the trace header. See the [crate documentation](crate).
///
/// It holds no per-call state (that lives in each call's own `ConfigBag`), so one instance,
/// attached once to a client's configuration, serves any number of concurrent calls.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct XRayInterceptor {}

impl XRayInterceptor {
    /// A new interceptor. Subsegments go to the recorder of the segment they are part of.
    pub fn new() -> Self {
        XRayInterceptor {}
    }
}

/// Per-call state, in the call's `ConfigBag` interceptor layer.
#[derive(Debug)]
struct CallState {
    /// The context that was current when the call started.
    parent: Context,
    /// The call's subsegment, once its name is known.
    subsegment: Option<Subsegment>,
    /// The `X-Amzn-Trace-Id` value for this call's requests.
    header: String,
    /// The whitelist entry of the operation, if any.
    params: Option<&'static OperationParams>,
    /// Whether any attempt was throttled.
    throttled: bool,
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
    let region = cfg.load::<Region>().map(|r| r.as_ref().to_owned());
    let Some(state) = cfg.get_mut_from_interceptor_state::<CallState>() else {
        return;
    };
    let name = meta
        .as_ref()
        .map_or(Cow::Borrowed("AWS"), |m| segment_name(m.service()));
    let sub = state.parent.begin_subsegment_with(name, |e| {
        e.set_namespace(Namespace::Aws);
        if let Some(meta) = &meta {
            e.set_aws_field("operation", meta.name().to_owned());
        }
        if let Some(region) = region {
            e.set_aws_field("region", region);
        }
    });
    if sub.is_sampled() {
        state.params = meta
            .as_ref()
            .and_then(|m| params::lookup(m.service(), m.name()));
    }
    state.header = sub.downstream_header().to_header_value();
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
    if !sub.is_sampled() {
        return;
    }
    let response = ctx.response();
    let mut fields: Vec<(&'static str, params::Picked)> = Vec::with_capacity(4);
    if let Some(attempts) = attempts {
        fields.push((
            "retries",
            serde_json::Value::from(attempts.saturating_sub(1)).into(),
        ));
    }
    let mut http = None;
    if let Some(resp) = response {
        let headers = resp.headers();
        if let Some(id) = headers
            .get("x-amzn-requestid")
            .or_else(|| headers.get("x-amz-request-id"))
        {
            fields.push(("request_id", serde_json::Value::from(id).into()));
        }
        if let Some(id2) = headers.get("x-amz-id-2") {
            fields.push(("id_2", serde_json::Value::from(id2).into()));
        }
        let length = headers
            .get("content-length")
            .and_then(|l| l.trim().parse::<u64>().ok())
            .or_else(|| resp.body().content_length());
        http = Some((resp.status().as_u16(), length));
    }
    let mut exception = None;
    let mut flag = None;
    match ctx.output_or_error() {
        Some(Ok(_)) => {
            if let (Some(op), Some(body)) = (state.params, response.and_then(|r| r.body().bytes()))
            {
                fields.extend(params::pick(body, op.response));
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
                    state.throttled = true;
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
    let throttled = state.throttled;
    sub.end_with(|e| {
        for (key, value) in fields {
            set_picked(e, key, value);
        }
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

/// Whether an attempt's response was throttled (status 429 or a throttling error code).
/// Sets a captured field on the subsegment: raw JSON text is copied, a built value is set.
fn set_picked(e: &mut xray_sdk::EntityMut<'_>, key: &'static str, value: params::Picked) {
    match value {
        params::Picked::Value(v) => e.set_aws_field(key, v),
        params::Picked::Raw(raw) => e.set_aws_field_json(key, raw),
    }
}

fn attempt_throttled(resp: &HttpResponse) -> bool {
    let status = resp.status().as_u16();
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    remote_error::read(resp)
        .code
        .is_some_and(|c| remote_error::is_throttling_code(&c))
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
                    header: String::new(),
                    params: None,
                    throttled: false,
                });
            }
            None => {
                if let Err(e) = xray_sdk::recorder::context_missing("AWS SDK call") {
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
        let Some(state) = cfg.load::<CallState>() else {
            return Ok(());
        };
        if let (Some(op), Some(sub)) = (state.params, &state.subsegment)
            && let Some(body) = ctx.request().body().bytes()
        {
            let fields = params::pick(body, op.request);
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
        if let Some(state) = cfg.load::<CallState>()
            && !state.header.is_empty()
            && let Err(e) = ctx
                .request_mut()
                .headers_mut()
                .try_insert(TRACE_HEADER, state.header.clone())
        {
            tracing::debug!(error = %e, "X-Amzn-Trace-Id not set");
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(resp) = ctx.response()
            && resp.status().as_u16() >= 400
            && attempt_throttled(resp)
            && let Some(state) = cfg.get_mut_from_interceptor_state::<CallState>()
        {
            state.throttled = true;
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
