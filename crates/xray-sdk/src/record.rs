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
use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;

use arrayvec::ArrayVec;
use std::fmt;

use serde::Serialize;

use crate::deferred::DeferredFields;
use crate::id::EntityId;
use crate::model::{
    AnnotationError, AnnotationValue, Cause, Exception, HttpRequest, MAX_ANNOTATION_VALUE_LEN,
    Namespace, Sql, sanitize_name, validate_annotation_key,
};
use crate::trace::{AwsKey, Changes, FLAG_ERROR, FLAG_FAULT, FLAG_THROTTLE, Op, Owned, Str, Value};

/// Only this crate's types record. The methods every setter is built on live here, in a
/// trait other crates cannot name: they take the crate's own change type and are not part of
/// the public surface.
pub(crate) mod sealed {
    use std::borrow::Cow;

    use super::Patch;
    use crate::trace::{Op, Str};

    pub trait Sealed<'a> {
        /// Makes changes through a patch: this one, or (on a [`Context`](crate::Context)) a
        /// new one applied at once. Not called when nothing is recorded.
        fn change(&self, f: impl FnOnce(&Patch<'a>));

        /// Makes one change whose strings are borrowed (on a [`Context`](crate::Context):
        /// applied at once, without a patch).
        fn push(&self, op: Op<'a>);

        /// Whether changes are recorded at all (false on an unsampled trace).
        fn records(&self) -> bool;

        /// Makes a change that holds one string.
        #[inline]
        fn push_str(&self, s: Cow<'a, str>, make: impl Fn(Str<'a>) -> Op<'a>) {
            match s {
                Cow::Borrowed(b) => self.push(make(Str::Borrowed(b))),
                owned => self.change(|p| p.push(make(p.str(owned)))),
            }
        }
    }
}

use sealed::Sealed as _;

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
/// let segment = recorder.segment("orders").begin();
/// segment.annotate("customer_tier", "gold");
/// let call = segment.begin_subsegment_with("DynamoDB", |p| {
///     p.set_namespace(Namespace::Aws);
///     p.set_aws_operation("GetItem");
///     p.set_aws_table_name("orders");
/// });
/// call.end_with(|p| p.set_http_response(200, None));
/// ```
pub trait Record<'a>: sealed::Sealed<'a> {
    /// Renames the entity (sanitized like every name, see
    /// [`sanitize_name`](crate::model::sanitize_name)).
    fn set_name(&self, name: impl Into<Cow<'a, str>>) {
        if self.records() {
            self.push_str(sanitize_name(name), Op::Name);
        }
    }

    /// Sets the subsegment's namespace (`aws` or `remote`).
    fn set_namespace(&self, namespace: Namespace) {
        self.push(Op::Namespace(namespace));
    }

    /// Sets the fields of the `http.request` block that `request` has.
    fn set_http_request(&self, request: HttpRequest) {
        let HttpRequest {
            method,
            url,
            user_agent,
            client_ip,
            x_forwarded_for,
            traced,
        } = request;
        self.change(|p| {
            if let Some(m) = method {
                p.push(Op::HttpMethod(p.str(m)));
            }
            if let Some(u) = url {
                p.push(Op::HttpUrl(p.str(Cow::Owned(u))));
            }
            if let Some(a) = user_agent {
                p.push(Op::HttpUserAgent(p.str(Cow::Owned(a))));
            }
            if let Some(ip) = client_ip {
                p.push(Op::HttpClientIp(p.str(Cow::Owned(ip)), x_forwarded_for));
            }
            if traced {
                p.push(Op::HttpTraced(true));
            }
        });
    }

    /// Sets `http.request.method` (upper case, as [`http_method`](crate::model::http_method)
    /// gives it).
    fn set_http_method(&self, method: impl Into<Cow<'a, str>>) {
        self.push_str(method.into(), Op::HttpMethod);
    }

    /// Sets `http.request.url`.
    fn set_http_url(&self, url: impl Into<Cow<'a, str>>) {
        self.push_str(url.into(), Op::HttpUrl);
    }

    /// Sets `http.request.url` to `http://` (or `https://`) + `host` + `path`, without
    /// building the URL first.
    ///
    /// ```
    /// use xray_sdk::Record;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.segment("api").begin_with(|p| {
    ///     p.set_http_url_parts(true, "api.example.com", "/orders/7");
    /// });
    /// # segment.end();
    /// ```
    fn set_http_url_parts(
        &self,
        https: bool,
        host: impl Into<Cow<'a, str>>,
        path: impl Into<Cow<'a, str>>,
    ) {
        match (host.into(), path.into()) {
            (Cow::Borrowed(h), Cow::Borrowed(path)) => {
                self.push(Op::HttpUrlParts(
                    https,
                    Str::Borrowed(h),
                    Str::Borrowed(path),
                ));
            }
            (h, path) => self.change(|p| p.push(Op::HttpUrlParts(https, p.str(h), p.str(path)))),
        }
    }

    /// Sets `http.request.user_agent` (segments).
    fn set_http_user_agent(&self, user_agent: impl Into<Cow<'a, str>>) {
        self.push_str(user_agent.into(), Op::HttpUserAgent);
    }

    /// Sets `http.request.client_ip` (segments), and `x_forwarded_for` when the address
    /// came from that header.
    fn set_http_client_ip(&self, ip: impl Into<Cow<'a, str>>, x_forwarded_for: bool) {
        match ip.into() {
            Cow::Borrowed(ip) => self.push(Op::HttpClientIp(Str::Borrowed(ip), x_forwarded_for)),
            ip => self.change(|p| p.push(Op::HttpClientIp(p.str(ip), x_forwarded_for))),
        }
    }

    /// Marks the downstream service of this subsegment as traced (`http.request.traced`).
    fn set_http_traced(&self, traced: bool) {
        self.push(Op::HttpTraced(traced));
    }

    /// Sets the `http.response` block and the error/throttle/fault flags the status implies:
    /// 4xx error, 429 throttle (and error), 5xx fault.
    fn set_http_response(&self, status: u16, content_length: Option<u64>) {
        self.push(Op::HttpResponse(status, content_length));
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
        self.change(|p| p.own(Owned::Cause(Box::new(cause))));
    }

    /// Adds one exception to the `cause` block without changing flags.
    fn add_exception(&self, exception: Exception) {
        self.change(|p| p.own(Owned::Cause(Box::new(Cause::from_exception(exception)))));
    }

    /// Records an error and its `source()` chain as the `cause`, and sets `fault`.
    fn record_error<E: std::error::Error + 'static>(&self, error: &E) {
        if self.records() {
            // The error is formatted before anything is locked.
            let cause = Cause::from_error(error);
            self.change(|p| {
                p.own(Owned::Cause(Box::new(cause)));
                p.push(Op::Flags(FLAG_FAULT));
            });
        }
    }

    /// Records an error given as a trait object, and sets `fault`.
    fn record_dyn_error(&self, error: &(dyn std::error::Error + 'static)) {
        if self.records() {
            let cause = Cause::from_dyn_error(error);
            self.change(|p| {
                p.own(Owned::Cause(Box::new(cause)));
                p.push(Op::Flags(FLAG_FAULT));
            });
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
        self.change(|p| {
            let value = match value {
                AnnotationValue::String(s) => Value::Str(p.str(s)),
                AnnotationValue::Int(i) => Value::Int(i),
                AnnotationValue::Float(f) => Value::Float(f),
                AnnotationValue::Bool(b) => Value::Bool(b),
            };
            p.push(Op::Annotation(p.str(key), value));
        });
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
            Ok(json) => self.change(|p| {
                p.push(Op::Metadata(
                    p.str(namespace),
                    p.str(key.into()),
                    p.str(Cow::Owned(json)),
                ));
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
        let json = match serde_json::to_string(&value) {
            Ok(json) => json,
            Err(e) => {
                tracing::debug!(error = %e, "aws field value is not serializable; dropped");
                return;
            }
        };
        self.change(
            |p| match (AwsKey::from_key(&key), crate::json::plain_string(&json)) {
                (Some(k), Some(s)) => p.push(Op::Aws(k, p.str(Cow::Owned(s.to_owned())))),
                _ => match (&*key, json.parse::<u32>()) {
                    ("retries", Ok(n)) => p.push(Op::AwsRetries(n)),
                    _ => p.push(Op::AwsJson(p.str(key), p.str(Cow::Owned(json)))),
                },
            },
        );
    }

    /// Sets `aws.operation`, the AWS API operation called (`GetItem`).
    fn set_aws_operation(&self, operation: impl Into<Cow<'a, str>>) {
        self.push_str(operation.into(), |s| Op::Aws(AwsKey::Operation, s));
    }

    /// Sets `aws.region`.
    fn set_aws_region(&self, region: impl Into<Cow<'a, str>>) {
        self.push_str(region.into(), |s| Op::Aws(AwsKey::Region, s));
    }

    /// Sets `aws.request_id`.
    fn set_aws_request_id(&self, request_id: impl Into<Cow<'a, str>>) {
        self.push_str(request_id.into(), |s| Op::Aws(AwsKey::RequestId, s));
    }

    /// Sets `aws.table_name` (DynamoDB).
    fn set_aws_table_name(&self, table_name: impl Into<Cow<'a, str>>) {
        self.push_str(table_name.into(), |s| Op::Aws(AwsKey::TableName, s));
    }

    /// Sets `aws.queue_url` (SQS).
    fn set_aws_queue_url(&self, queue_url: impl Into<Cow<'a, str>>) {
        self.push_str(queue_url.into(), |s| Op::Aws(AwsKey::QueueUrl, s));
    }

    /// Sets `aws.retries`, the number of retries the call took.
    fn set_aws_retries(&self, retries: u32) {
        self.push(Op::AwsRetries(retries));
    }

    /// Adds `aws` fields that are worked out when the document is written, on the emitter's
    /// thread, instead of now (see [`crate::deferred`]). Fields set directly win over
    /// deferred ones.
    fn add_deferred_fields(&self, fields: Box<dyn DeferredFields>) {
        self.change(|p| p.own(Owned::Deferred(fields)));
    }

    /// Sets the `sql` block.
    fn set_sql(&self, sql: Sql) {
        self.change(|p| p.own(Owned::Sql(Box::new(sql))));
    }

    /// Sets the `user` field (segments).
    fn set_user(&self, user: impl Into<Cow<'a, str>>) {
        self.push_str(user.into(), Op::User);
    }

    /// Sets the `origin` field (segments), e.g. `AWS::ECS::Container`. Overrides the plugins'.
    fn set_origin(&self, origin: impl Into<Cow<'a, str>>) {
        self.push_str(origin.into(), Op::Origin);
    }

    /// Sets `resource_arn`.
    fn set_resource_arn(&self, arn: impl Into<Cow<'a, str>>) {
        self.push_str(arn.into(), Op::ResourceArn);
    }

    /// Sets `service.version` (segments).
    fn set_service_version(&self, version: impl Into<Cow<'a, str>>) {
        self.push_str(version.into(), Op::ServiceVersion);
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
const INLINE_OPS: usize = 6;

/// Changes collected by a closure ([`Context::update`](crate::Context::update),
/// [`Entity::end_with`](crate::Entity::end_with),
/// [`Context::begin_subsegment_with`](crate::Context::begin_subsegment_with),
/// [`SegmentBuilder::begin_with`](crate::SegmentBuilder::begin_with)) and applied together,
/// under one lock, once it returns. Its setters are those of [`Record`].
///
/// The closure runs without any lock held, so it may record anywhere, this trace included;
/// those changes are applied at once, before the patch.
pub struct Patch<'a> {
    /// The first changes, in place; they borrow their strings, so keeping them costs no
    /// allocation and dropping them nothing.
    ops: RefCell<ArrayVec<Op<'a>, INLINE_OPS>>,
    /// What few patches need, made on first use: nothing to build or drop otherwise. Dropped
    /// by `Patch`'s `Drop`, which looks before it calls: the compiler's own drop of an
    /// `Option<Box<Rest>>` is an out-of-line function that saves five registers before it
    /// finds the `None` most patches hold (13 instructions a patch, 8 patches a request).
    rest: RefCell<ManuallyDrop<Option<Box<Rest<'a>>>>>,
}

/// The parts of a [`Patch`] beyond its first changes.
#[derive(Default)]
struct Rest<'a> {
    /// Changes after the first [`INLINE_OPS`].
    more: Vec<Op<'a>>,
    /// Strings handed over owned, which [`Str::Local`] ranges point into.
    local: String,
    /// Values that cannot be borrowed, in the order of their [`Op::Owned`] markers.
    owned: Vec<Option<Owned>>,
}

impl fmt::Debug for Patch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = self
            .rest
            .try_borrow()
            .map_or(0, |r| r.as_ref().map_or(0, |r| r.more.len()));
        let first = self.ops.try_borrow().map_or(0, |o| o.len());
        f.debug_struct("Patch")
            .field("changes", &(first + more))
            .finish()
    }
}

impl<'a> Patch<'a> {
    pub(crate) fn new() -> Self {
        Patch {
            ops: RefCell::new(ArrayVec::new_const()),
            rest: RefCell::new(ManuallyDrop::new(None)),
        }
    }

    /// Adds a change.
    #[inline]
    fn add(&self, op: Op<'a>) {
        let full = match self.ops.try_borrow_mut() {
            Ok(mut ops) => ops.try_push(op).err().map(|e| e.element()),
            Err(_) => Some(op),
        };
        if let Some(op) = full {
            self.with_rest(|rest| rest.more.push(op));
        }
    }

    /// Runs `f` on the patch's further parts, made if needed.
    #[cold]
    fn with_rest<R: Default>(&self, f: impl FnOnce(&mut Rest<'a>) -> R) -> R {
        match self.rest.try_borrow_mut() {
            Ok(mut rest) => f(rest.get_or_insert_with(Box::default)),
            // Never borrowed across user code: not reached.
            Err(_) => R::default(),
        }
    }

    /// A string for a change: borrowed as it is, or an owned one moved into the patch.
    #[inline]
    fn str(&self, s: Cow<'a, str>) -> Str<'a> {
        match s {
            Cow::Borrowed(b) => Str::Borrowed(b),
            Cow::Owned(o) => self.local_str(&o),
        }
    }

    #[cold]
    fn local_str(&self, s: &str) -> Str<'a> {
        self.with_rest(|rest| {
            let local = &mut rest.local;
            if local.capacity() == 0 {
                // The thread's spare buffer, so that owned values cost no allocation here.
                *local = LOCAL.try_with(|l| l.take()).unwrap_or_default();
            }
            let (Ok(start), Ok(end)) = (
                u32::try_from(local.len()),
                u32::try_from(local.len() + s.len()),
            ) else {
                return None;
            };
            local.push_str(s);
            Some(Str::Local { start, end })
        })
        .unwrap_or(Str::Borrowed(""))
    }

    /// Adds a change that owns its value.
    fn own(&self, value: Owned) {
        let index = self.with_rest(|rest| {
            let i = u32::try_from(rest.owned.len()).ok()?;
            rest.owned.push(Some(value));
            Some(i)
        });
        if let Some(i) = index {
            self.add(Op::Owned(i));
        }
    }

    /// Whether the changes name the entity.
    pub(crate) fn names(&mut self) -> bool {
        let named = |op: &Op<'a>| matches!(op, Op::Name(_));
        self.ops.get_mut().iter().any(named)
            || self
                .rest
                .get_mut()
                .as_ref()
                .is_some_and(|r| r.more.iter().any(named))
    }

    /// Hands the changes, in order, to `apply`.
    pub(crate) fn apply<R>(&mut self, apply: impl FnOnce(Changes<'_, 'a>) -> R) -> R {
        let first = self.ops.get_mut().as_slice();
        match &mut **self.rest.get_mut() {
            None => apply(Changes {
                first,
                more: &[],
                local: "",
                owned: &mut [],
            }),
            Some(rest) => apply(Changes {
                first,
                more: &rest.more,
                local: &rest.local,
                owned: &mut rest.owned,
            }),
        }
    }
}

impl Drop for Patch<'_> {
    #[inline]
    fn drop(&mut self) {
        // Taken out, the `ManuallyDrop` is left holding `None`: nothing is leaked.
        if let Some(rest) = Option::take(self.rest.get_mut()) {
            drop_rest(rest);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_rest(rest: Box<Rest<'_>>) {
    drop(rest);
}

// The spare buffer goes back when the rest is dropped, not the patch: a patch without a rest
// (most of them) then has nothing to do when dropped.
impl Drop for Rest<'_> {
    fn drop(&mut self) {
        let local = &mut self.local;
        if local.capacity() != 0 {
            let mut spare = std::mem::take(local);
            spare.clear();
            // Buffers grown past a few KiB (a large metadata value) are not kept.
            if spare.capacity() <= 4096 {
                let _ = LOCAL.try_with(|l| l.set(spare));
            }
        }
    }
}

thread_local! {
    /// A buffer for the owned strings of this thread's patches, reused from patch to patch
    /// (a nested patch, made while one holds it, gets a buffer of its own).
    static LOCAL: Cell<String> = const { Cell::new(String::new()) };
}

impl<'a> Record<'a> for Patch<'a> {}

impl<'a> sealed::Sealed<'a> for Patch<'a> {
    #[inline]
    fn change(&self, f: impl FnOnce(&Patch<'a>)) {
        f(self);
    }

    #[inline]
    fn push(&self, op: Op<'a>) {
        self.add(op);
    }

    #[inline]
    fn records(&self) -> bool {
        true
    }
}
