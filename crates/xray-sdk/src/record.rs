//! One setter surface: [`Record`] annotates, puts metadata, sets the `http`, `aws` and `sql`
//! blocks and the flags, the same way on a [`Context`] (applied at once, under the trace's
//! lock) and on a [`Patch`] (the changes a closure collects, applied together under one
//! lock).
//!
//! Every check, and every piece of user code (a metadata value's `Serialize`, an error's
//! `Display`), runs here, before a change reaches the trace: the trace's lock is never held
//! while user code runs, so user code may record into any trace, this one included.
//!
//! [`Context`]: crate::Context

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::Serialize;

use crate::deferred::DeferredFields;
use crate::id::EntityId;
use crate::model::{
    AnnotationError, AnnotationValue, Cause, Exception, HttpRequest, MAX_ANNOTATION_VALUE_LEN,
    Namespace, Sql, sanitize_name, validate_annotation_key,
};
use crate::trace::{AwsKey, FLAG_ERROR, FLAG_FAULT, FLAG_THROTTLE, Op};

mod sealed {
    pub trait Sealed {}
}

/// Records into a segment or subsegment. Implemented by [`Context`](crate::Context) (and
/// so by the [`Entity`](crate::Entity) guards, which dereference to it), where each call is
/// applied at once, and by [`Patch`], where calls are collected and applied together.
///
/// Setters on an unsampled trace do nothing and cost next to nothing: values are not even
/// serialized. Strings may be borrowed: they are copied into the trace's storage when the
/// change is applied, so a borrowed value costs no allocation.
///
/// ```
/// use xray_sdk::{Namespace, Record, Recorder};
/// # let recorder = Recorder::disabled();
/// let segment = recorder.begin_segment("orders");
/// segment.annotate("customer_tier", "gold");
/// let call = segment.begin_subsegment_with("DynamoDB", |p| {
///     p.set_namespace(Namespace::Aws);
///     p.set_aws_operation("GetItem");
///     p.set_aws_table_name("orders");
/// });
/// call.end_with(|p| p.set_http_response(200, None));
/// ```
pub trait Record<'a>: sealed::Sealed {
    /// Applies (or, on a [`Patch`], collects) one change.
    #[doc(hidden)]
    fn push(&self, op: Op<'a>);

    /// Whether changes are recorded at all (false on an unsampled trace).
    #[doc(hidden)]
    fn records(&self) -> bool;

    /// Renames the entity (sanitized like every name, see
    /// [`sanitize_name`](crate::model::sanitize_name)).
    fn set_name(&self, name: impl Into<Cow<'a, str>>) {
        if self.records() {
            self.push(Op::Name(sanitize_name(name)));
        }
    }

    /// Sets the subsegment's namespace (`aws` or `remote`).
    fn set_namespace(&self, namespace: Namespace) {
        self.push(Op::Namespace(namespace));
    }

    /// Sets the fields of the `http.request` block that `request` has.
    fn set_http_request(&self, request: HttpRequest) {
        if !self.records() {
            return;
        }
        let HttpRequest {
            method,
            url,
            user_agent,
            client_ip,
            x_forwarded_for,
            traced,
        } = request;
        if let Some(m) = method {
            self.push(Op::HttpMethod(m));
        }
        if let Some(u) = url {
            self.push(Op::HttpUrl(Cow::Owned(u)));
        }
        if let Some(a) = user_agent {
            self.push(Op::HttpUserAgent(Cow::Owned(a)));
        }
        if let Some(ip) = client_ip {
            self.push(Op::HttpClientIp {
                ip: Cow::Owned(ip),
                x_forwarded_for,
            });
        }
        if traced {
            self.push(Op::HttpTraced(true));
        }
    }

    /// Sets `http.request.method` (upper case, as [`http_method`](crate::model::http_method)
    /// gives it).
    fn set_http_method(&self, method: impl Into<Cow<'a, str>>) {
        self.push(Op::HttpMethod(method.into()));
    }

    /// Sets `http.request.url`.
    fn set_http_url(&self, url: impl Into<Cow<'a, str>>) {
        self.push(Op::HttpUrl(url.into()));
    }

    /// Sets `http.request.user_agent` (segments).
    fn set_http_user_agent(&self, user_agent: impl Into<Cow<'a, str>>) {
        self.push(Op::HttpUserAgent(user_agent.into()));
    }

    /// Sets `http.request.client_ip` (segments), and `x_forwarded_for` when the address
    /// came from that header.
    fn set_http_client_ip(&self, ip: impl Into<Cow<'a, str>>, x_forwarded_for: bool) {
        self.push(Op::HttpClientIp {
            ip: ip.into(),
            x_forwarded_for,
        });
    }

    /// Marks the downstream service of this subsegment as traced (`http.request.traced`).
    fn set_http_traced(&self, traced: bool) {
        self.push(Op::HttpTraced(traced));
    }

    /// Sets the `http.response` block and the error/throttle/fault flags the status implies:
    /// 4xx error, 429 throttle (and error), 5xx fault.
    fn set_http_response(&self, status: u16, content_length: Option<u64>) {
        self.push(Op::HttpResponse {
            status,
            content_length,
        });
    }

    /// Sets the `error` flag (a client error, 4xx-like).
    fn set_error(&self) {
        self.push(Op::Flags(FLAG_ERROR));
    }

    /// Sets the `fault` flag (a server error, 5xx-like).
    fn set_fault(&self) {
        self.push(Op::Flags(FLAG_FAULT));
    }

    /// Sets the `throttle` and `error` flags.
    fn set_throttle(&self) {
        self.push(Op::Flags(FLAG_THROTTLE | FLAG_ERROR));
    }

    /// Adds the exceptions of `cause` to the `cause` block without changing flags.
    ///
    /// The first [`MAX_EXCEPTIONS`](crate::model::MAX_EXCEPTIONS) exceptions are kept; later
    /// ones are counted in the last kept exception's `skipped`, so that a long-lived segment
    /// recording an error per message neither grows without bound nor gets too large to send.
    fn add_cause(&self, cause: Cause) {
        if self.records() {
            self.push(Op::Cause(Box::new(cause)));
        }
    }

    /// Adds one exception to the `cause` block without changing flags.
    fn add_exception(&self, exception: Exception) {
        if self.records() {
            self.push(Op::Cause(Box::new(Cause::from_exception(exception))));
        }
    }

    /// Records an error and its `source()` chain as the `cause`, and sets `fault`.
    fn record_error<E: std::error::Error + 'static>(&self, error: &E) {
        if self.records() {
            self.push(Op::Cause(Box::new(Cause::from_error(error))));
            self.push(Op::Flags(FLAG_FAULT));
        }
    }

    /// Records an error given as a trait object, and sets `fault`.
    fn record_dyn_error(&self, error: &(dyn std::error::Error + 'static)) {
        if self.records() {
            self.push(Op::Cause(Box::new(Cause::from_dyn_error(error))));
            self.push(Op::Flags(FLAG_FAULT));
        }
    }

    /// Adds an annotation (indexed for filter expressions). An invalid key or a non-finite
    /// number is logged at debug level and dropped; use [`Record::try_annotate`] to get the
    /// error instead. String values are cut to 1000 characters.
    fn annotate(&self, key: impl Into<Cow<'a, str>>, value: impl Into<AnnotationValue<'a>>) {
        if let Err(e) = self.try_annotate(key, value) {
            tracing::debug!(error = %e, "annotation dropped");
        }
    }

    /// Adds an annotation, or says why it cannot be added.
    fn try_annotate(
        &self,
        key: impl Into<Cow<'a, str>>,
        value: impl Into<AnnotationValue<'a>>,
    ) -> Result<(), AnnotationError> {
        let (key, value) = checked_annotation(key.into(), value.into())?;
        if self.records() {
            self.push(Op::Annotation(key, value));
        }
        Ok(())
    }

    /// Adds metadata under the `default` namespace. Values that cannot be turned into JSON
    /// are logged at debug level and dropped.
    fn put_metadata(&self, key: impl Into<Cow<'a, str>>, value: impl Serialize) {
        self.put_metadata_in("default", key, value);
    }

    /// Adds metadata under a namespace. Namespaces starting with `AWS.` are reserved for AWS
    /// and refused (logged at debug level). The value is serialized now, before anything is
    /// locked.
    fn put_metadata_in(
        &self,
        namespace: impl Into<Cow<'a, str>>,
        key: impl Into<Cow<'a, str>>,
        value: impl Serialize,
    ) {
        if !self.records() {
            return;
        }
        let namespace = namespace.into();
        if namespace.starts_with("AWS.") || namespace.is_empty() {
            tracing::debug!(
                namespace = %namespace,
                "metadata namespace is reserved or empty; dropped"
            );
            return;
        }
        match serde_json::to_string(&value) {
            Ok(json) => self.push(Op::Metadata {
                namespace,
                key: key.into(),
                json: json.into_boxed_str(),
            }),
            Err(e) => tracing::debug!(error = %e, "metadata value is not serializable; dropped"),
        }
    }

    /// Sets one field of the `aws` block to any value that serializes to JSON (subsegments:
    /// `operation`, `region`, `request_id`, `retries`, `table_name`, ...; segments:
    /// `account_id`, `elastic_beanstalk`, ...). Setting a key again replaces its value. On a
    /// segment, the keys the SDK writes itself (`xray`, and `ecs`, `ec2`, `eks`,
    /// `account_id` when an environment plugin found them) keep the SDK's values. The
    /// typed setters ([`Record::set_aws_operation`], ...) cost less.
    fn set_aws_field(&self, key: impl Into<Cow<'a, str>>, value: impl Serialize) {
        if !self.records() {
            return;
        }
        let key = key.into();
        match serde_json::to_string(&value) {
            Ok(json) => match (AwsKey::from_key(&key), crate::json::plain_string(&json)) {
                (Some(k), Some(s)) => self.push(Op::Aws(k, Cow::Owned(s.to_owned()))),
                _ => match (&*key, json.parse::<u32>()) {
                    ("retries", Ok(n)) => self.push(Op::AwsRetries(n)),
                    _ => self.push(Op::AwsJson {
                        key,
                        json: Cow::Owned(json),
                    }),
                },
            },
            Err(e) => tracing::debug!(error = %e, "aws field value is not serializable; dropped"),
        }
    }

    /// Sets `aws.operation`, the AWS API operation called (`GetItem`).
    fn set_aws_operation(&self, operation: impl Into<Cow<'a, str>>) {
        self.push(Op::Aws(AwsKey::Operation, operation.into()));
    }

    /// Sets `aws.region`.
    fn set_aws_region(&self, region: impl Into<Cow<'a, str>>) {
        self.push(Op::Aws(AwsKey::Region, region.into()));
    }

    /// Sets `aws.request_id`.
    fn set_aws_request_id(&self, request_id: impl Into<Cow<'a, str>>) {
        self.push(Op::Aws(AwsKey::RequestId, request_id.into()));
    }

    /// Sets `aws.table_name` (DynamoDB).
    fn set_aws_table_name(&self, table_name: impl Into<Cow<'a, str>>) {
        self.push(Op::Aws(AwsKey::TableName, table_name.into()));
    }

    /// Sets `aws.queue_url` (SQS).
    fn set_aws_queue_url(&self, queue_url: impl Into<Cow<'a, str>>) {
        self.push(Op::Aws(AwsKey::QueueUrl, queue_url.into()));
    }

    /// Sets `aws.retries`, the number of retries the call took.
    fn set_aws_retries(&self, retries: u32) {
        self.push(Op::AwsRetries(retries));
    }

    /// Adds `aws` fields that are worked out when the document is written, on the emitter's
    /// thread, instead of now (see [`crate::deferred`]). Fields set directly win over
    /// deferred ones.
    fn add_deferred_fields(&self, fields: Box<dyn DeferredFields>) {
        if self.records() {
            self.push(Op::Deferred(fields));
        }
    }

    /// Sets the `sql` block.
    fn set_sql(&self, sql: Sql) {
        if self.records() {
            self.push(Op::Sql(Box::new(sql)));
        }
    }

    /// Sets the `user` field (segments).
    fn set_user(&self, user: impl Into<Cow<'a, str>>) {
        self.push(Op::User(user.into()));
    }

    /// Sets the `origin` field (segments), e.g. `AWS::ECS::Container`. Overrides the plugins'.
    fn set_origin(&self, origin: impl Into<Cow<'a, str>>) {
        self.push(Op::Origin(origin.into()));
    }

    /// Sets `resource_arn`.
    fn set_resource_arn(&self, arn: impl Into<Cow<'a, str>>) {
        self.push(Op::ResourceArn(arn.into()));
    }

    /// Sets `service.version` (segments).
    fn set_service_version(&self, version: impl Into<Cow<'a, str>>) {
        self.push(Op::ServiceVersion(version.into()));
    }

    /// Adds a `precursor_ids` entry: a sibling subsegment that completed before this one began.
    fn add_precursor_id(&self, id: EntityId) {
        self.push(Op::Precursor(id));
    }
}

/// Validates an annotation and cuts a long string value.
fn checked_annotation<'a>(
    key: Cow<'a, str>,
    mut value: AnnotationValue<'a>,
) -> Result<(Cow<'a, str>, AnnotationValue<'a>), AnnotationError> {
    validate_annotation_key(&key)?;
    match &mut value {
        AnnotationValue::Float(f) if !f.is_finite() => {
            return Err(AnnotationError::NonFiniteNumber(key.into_owned()));
        }
        AnnotationValue::String(s) => {
            if let Some((cut, _)) = s.char_indices().nth(MAX_ANNOTATION_VALUE_LEN) {
                match s {
                    Cow::Borrowed(b) => *b = &b[..cut],
                    Cow::Owned(o) => o.truncate(cut),
                }
            }
        }
        _ => {}
    }
    Ok((key, value))
}

/// Room for the changes of a typical closure without allocating.
const INLINE_OPS: usize = 8;

/// Changes collected by a closure ([`Context::update`](crate::Context::update),
/// [`Entity::end_with`](crate::Entity::end_with),
/// [`Context::begin_subsegment_with`](crate::Context::begin_subsegment_with),
/// [`SegmentBuilder::begin_with`](crate::SegmentBuilder::begin_with)) and applied together,
/// under one lock, once it returns. Its setters are those of [`Record`].
///
/// The closure runs without any lock held, so it may record anywhere, this trace included;
/// those changes are applied at once, before the patch.
pub struct Patch<'a> {
    ops: RefCell<Ops<'a>>,
}

struct Ops<'a> {
    inline: [Option<Op<'a>>; INLINE_OPS],
    len: usize,
    more: Vec<Op<'a>>,
}

impl fmt::Debug for Patch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.ops.try_borrow().map_or(0, |o| o.len + o.more.len());
        f.debug_struct("Patch").field("changes", &n).finish()
    }
}

impl<'a> Patch<'a> {
    pub(crate) fn new() -> Self {
        Patch {
            ops: RefCell::new(Ops {
                inline: [const { None }; INLINE_OPS],
                len: 0,
                more: Vec::new(),
            }),
        }
    }

    /// The changes, in the order they were made.
    pub(crate) fn into_ops(self) -> impl Iterator<Item = Op<'a>> {
        let Ops { inline, len, more } = self.ops.into_inner();
        inline.into_iter().take(len).flatten().chain(more)
    }
}

impl sealed::Sealed for Patch<'_> {}

impl<'a> Record<'a> for Patch<'a> {
    fn push(&self, op: Op<'a>) {
        // Never borrowed across user code: setters push only after their values are ready.
        if let Ok(mut ops) = self.ops.try_borrow_mut() {
            let len = ops.len;
            match ops.inline.get_mut(len) {
                Some(slot) => {
                    *slot = Some(op);
                    ops.len += 1;
                }
                None => ops.more.push(op),
            }
        }
    }

    fn records(&self) -> bool {
        true
    }
}

impl sealed::Sealed for crate::handle::Context {}
