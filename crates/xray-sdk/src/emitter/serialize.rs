//! Segment documents as JSON, on the emitter thread.
//!
//! A batch becomes one datagram when it fits. When it does not, each child subtree is sent as
//! an independent subsegment (`type`, `trace_id`, `parent_id`) and the parent without its
//! children, recursively; a single document that still does not fit loses its metadata and
//! has its `cause` and `sql` texts cut short, and is dropped (and counted) only if even that
//! is not enough.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use super::{DAEMON_HEADER, MAX_DATAGRAM_SIZE};
use crate::deferred::AwsFieldWriter;
use crate::model::{AnnotationValue, Cause, Http, HttpRequest, HttpResponse, Sql};
use crate::plugins::Resources;
use crate::segment::{Batch, EntityData, FLAG_ERROR, FLAG_FAULT, FLAG_THROTTLE, NO_PARENT};

/// The SDK name written in `aws.xray.sdk`.
pub(crate) const SDK_NAME: &str = "X-Ray for Rust";
/// The SDK version written in `aws.xray.sdk_version`.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustc version this crate was built with.
pub(crate) const RUSTC_VERSION: &str = env!("XRAY_SDK_RUSTC_VERSION");

pub(crate) struct Env<'a> {
    pub(crate) resources: &'a Resources,
    pub(crate) service_version: Option<&'a str>,
}

pub(crate) enum Outcome {
    Datagram {
        start: usize,
        end: usize,
        truncated: bool,
    },
    TooLarge,
}

/// Buffers reused from batch to batch.
#[derive(Default)]
pub(crate) struct Scratch {
    /// For entity i, its children are `children[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    children: Vec<u32>,
    fill: Vec<u32>,
    pub(crate) out: Vec<Outcome>,
    /// The segment-level blocks that are the same for every segment of the process, already
    /// serialized: see [`ConstantBlocks`].
    constant: ConstantBlocks,
}

/// Most services use a handful of sampling rules; more are serialized each time.
const MAX_CACHED_AWS_BLOCKS: usize = 16;

/// The segment `aws` block (SDK name and version, plugin data, sampling rule name) and the
/// `service` block only change with the rule name and once the plugins have answered, so
/// they are serialized once per variant and copied into each document as they are.
#[derive(Default)]
struct ConstantBlocks {
    /// Keyed by (plugin data present, rule name).
    aws: Vec<(bool, Option<Arc<str>>, Box<RawValue>)>,
    /// Keyed by the service version.
    service: Option<(Option<String>, Box<RawValue>)>,
}

impl ConstantBlocks {
    /// Serializes the `aws` block for this rule name, unless cached or the cache is full.
    fn prepare_aws(&mut self, env: &Env<'_>, rule_name: Option<&Arc<str>>) {
        if self.aws.len() >= MAX_CACHED_AWS_BLOCKS || self.find_aws(env, rule_name).is_some() {
            return;
        }
        let res = env.resources.get();
        let block = SegmentAws {
            rule_name: rule_name.map(|n| &**n),
            resources: res,
        };
        if let Ok(raw) = serde_json::value::to_raw_value(&block) {
            self.aws.push((res.is_some(), rule_name.cloned(), raw));
        }
    }

    fn find_aws(&self, env: &Env<'_>, rule_name: Option<&Arc<str>>) -> Option<&RawValue> {
        let ready = env.resources.get().is_some();
        self.aws
            .iter()
            .find(|(r, name, _)| *r == ready && name.as_deref() == rule_name.map(|n| &**n))
            .map(|(_, _, raw)| &**raw)
    }

    /// Serializes the `service` block for this version, unless cached.
    fn prepare_service(&mut self, version: Option<&str>) {
        if self
            .service
            .as_ref()
            .is_none_or(|(v, _)| v.as_deref() != version)
        {
            self.service = serde_json::value::to_raw_value(&Service { version })
                .ok()
                .map(|raw| (version.map(str::to_owned), raw));
        }
    }
}

impl Scratch {
    fn index(&mut self, entities: &[EntityData]) {
        let n = entities.len();
        self.offsets.clear();
        self.offsets.resize(n + 1, 0);
        for e in entities {
            if e.parent != NO_PARENT
                && let Some(slot) = self.offsets.get_mut(e.parent as usize + 1)
            {
                *slot += 1;
            }
        }
        for i in 0..n {
            self.offsets[i + 1] += self.offsets[i];
        }
        self.children.clear();
        self.children.resize(self.offsets[n] as usize, 0);
        self.fill.clear();
        self.fill.extend_from_slice(&self.offsets[..n]);
        for (i, e) in entities.iter().enumerate() {
            if e.parent != NO_PARENT
                && let Some(pos) = self.fill.get_mut(e.parent as usize)
            {
                self.children[*pos as usize] = i as u32;
                *pos += 1;
            }
        }
    }

    fn children_of(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.children[a as usize..b as usize],
            _ => &[],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    Embedded,
    Independent,
}

struct Ctx<'a> {
    batch: &'a Batch,
    scratch: &'a Scratch,
    env: &'a Env<'a>,
    /// The segment's `aws` block, when cached.
    aws: Option<&'a RawValue>,
    /// The `service` block for the process-wide version, when cached.
    service: Option<&'a RawValue>,
}

struct Doc<'a> {
    ctx: &'a Ctx<'a>,
    index: usize,
    kind: Kind,
    with_children: bool,
    drop_metadata: bool,
}

// The document is written by hand rather than through `serde`: every key is a constant, IDs
// and times are written from their integers, and only strings that came from users go
// through JSON escaping (and only when they need it). Nested values of open shape (metadata,
// `aws` values, `cause`, `sql`) still go through `serde_json`.

type WriteResult = Result<(), serde_json::Error>;

/// Appends `s` as a JSON string: copied as it is when nothing needs escaping (the usual
/// case), else escaped by `serde_json`.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> WriteResult {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Epoch microseconds as seconds with up to six decimals (`1732290000.1234`): the same
/// number a float formatter prints for `us / 1e6`, without going through a float.
fn write_seconds(out: &mut Vec<u8>, us: u64) {
    write_u64(out, us / 1_000_000);
    let mut frac = us % 1_000_000;
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [0u8; 6];
    for d in digits.iter_mut().rev() {
        // frac % 10 < 10, so the cast cannot truncate.
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let len = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
    out.extend_from_slice(&digits[..len]);
}

/// `,"key":` (keys are constants without anything to escape).
fn key(out: &mut Vec<u8>, k: &str) {
    out.reserve(k.len() + 4);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_hex_str(out: &mut Vec<u8>, hex: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(hex);
    out.push(b'"');
}

fn write_doc(out: &mut Vec<u8>, d: &Doc<'_>) -> WriteResult {
    let Some(e) = d.ctx.batch.entities.get(d.index) else {
        return Ok(());
    };
    let ext = e.ext.as_deref();
    out.extend_from_slice(b"{\"name\":");
    write_str(out, &e.name)?;
    key(out, "id");
    write_hex_str(out, &e.id.to_bytes());
    if d.kind != Kind::Embedded {
        key(out, "trace_id");
        write_hex_str(out, &d.ctx.batch.trace_id.to_bytes());
    }
    key(out, "start_time");
    write_seconds(out, e.start_us);
    if e.end_us == 0 {
        out.extend_from_slice(b",\"in_progress\":true");
    } else {
        key(out, "end_time");
        write_seconds(out, e.end_us);
    }
    if d.kind == Kind::Independent {
        out.extend_from_slice(b",\"type\":\"subsegment\"");
    }
    if d.kind != Kind::Embedded
        && let Some(p) = &e.parent_id
    {
        key(out, "parent_id");
        write_hex_str(out, &p.to_bytes());
    }
    if let Some(ns) = e.namespace {
        key(out, "namespace");
        write_str(out, ns.as_str())?;
    }
    if e.flags & FLAG_ERROR != 0 {
        out.extend_from_slice(b",\"error\":true");
    }
    if e.flags & FLAG_THROTTLE != 0 {
        out.extend_from_slice(b",\"throttle\":true");
    }
    if e.flags & FLAG_FAULT != 0 {
        out.extend_from_slice(b",\"fault\":true");
    }
    if d.kind == Kind::Segment {
        let res = d.ctx.env.resources.get();
        key(out, "aws");
        let block_start = out.len();
        match d.ctx.aws {
            Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
            None => serde_json::to_writer(
                &mut *out,
                &SegmentAws {
                    rule_name: d.ctx.batch.rule_name.as_deref(),
                    resources: res,
                },
            )?,
        }
        // Fields set on the segment itself (`account_id`, ...) join the block, after the
        // SDK's and the environment's, which they cannot replace.
        let direct = ext.map_or(&[][..], |x| &x.aws[..]);
        let more = ext.map_or(&[][..], |x| &x.deferred[..]);
        if (!direct.is_empty() || e.deferred.is_some() || !more.is_empty())
            && out.last() == Some(&b'}')
            && out.len() > block_start + 2
        {
            out.pop();
            let taken = SegmentAws::keys(res);
            let mut w = AwsFieldWriter::continue_block(out, direct, &taken);
            for fields in e.deferred.iter().chain(more) {
                w.write_guarded(fields.as_ref());
            }
            w.finish()?;
        }
        let origin = ext
            .and_then(|x| x.origin.as_deref())
            .or_else(|| res.and_then(|r| r.origin));
        if let Some(origin) = origin {
            key(out, "origin");
            write_str(out, origin)?;
        }
        key(out, "service");
        let own_version = ext.and_then(|x| x.service_version.as_deref());
        match (own_version, d.ctx.service) {
            (None, Some(raw)) => out.extend_from_slice(raw.get().as_bytes()),
            _ => serde_json::to_writer(
                &mut *out,
                &Service {
                    version: own_version.or(d.ctx.env.service_version),
                },
            )?,
        }
    }
    if let Some(http) = &e.http {
        key(out, "http");
        write_http(out, http)?;
    }
    if d.kind != Kind::Segment {
        let direct = ext.map_or(&[][..], |x| &x.aws[..]);
        let more = ext.map_or(&[][..], |x| &x.deferred[..]);
        if !direct.is_empty() || e.deferred.is_some() || !more.is_empty() {
            let mut w = AwsFieldWriter::begin(out, direct);
            for fields in e.deferred.iter().chain(more) {
                w.write_guarded(fields.as_ref());
            }
            w.finish()?;
        }
    }
    if let Some(x) = ext {
        if let Some(user) = &x.user {
            key(out, "user");
            write_str(out, user)?;
        }
        if let Some(arn) = &x.resource_arn {
            key(out, "resource_arn");
            write_str(out, arn)?;
        }
        if let Some(sql) = &x.sql {
            key(out, "sql");
            if d.drop_metadata {
                serde_json::to_writer(&mut *out, &shortened_sql(sql))?;
            } else {
                serde_json::to_writer(&mut *out, sql)?;
            }
        }
        if let Some(cause) = &x.cause {
            key(out, "cause");
            if d.drop_metadata {
                serde_json::to_writer(&mut *out, &shortened_cause(cause))?;
            } else {
                serde_json::to_writer(&mut *out, cause)?;
            }
        }
        if !x.annotations.is_empty() {
            key(out, "annotations");
            let mut sep = b'{';
            for (k, v) in &x.annotations {
                out.push(sep);
                sep = b',';
                write_str(out, k)?;
                out.push(b':');
                match v {
                    AnnotationValue::String(s) => write_str(out, s)?,
                    AnnotationValue::Int(i) => serde_json::to_writer(&mut *out, i)?,
                    AnnotationValue::Float(f) => serde_json::to_writer(&mut *out, f)?,
                    AnnotationValue::Bool(b) => {
                        out.extend_from_slice(if *b { b"true" } else { b"false" })
                    }
                }
            }
            out.push(b'}');
        }
        if d.drop_metadata {
            out.extend_from_slice(
                b",\"metadata\":{\"xray_sdk\":{\"truncated\":\"metadata removed: document over 64 KiB\"}}",
            );
        } else if let Some(meta) = &x.metadata {
            key(out, "metadata");
            serde_json::to_writer(&mut *out, meta)?;
        }
        if !x.precursor_ids.is_empty() {
            key(out, "precursor_ids");
            let mut sep = b'[';
            for id in &x.precursor_ids {
                out.push(sep);
                sep = b',';
                write_hex_str(out, &id.to_bytes());
            }
            out.push(b']');
        }
    }
    if d.with_children {
        let kids = d.ctx.scratch.children_of(d.index);
        if !kids.is_empty() {
            key(out, "subsegments");
            let mut sep = b'[';
            for &k in kids {
                out.push(sep);
                sep = b',';
                write_doc(
                    out,
                    &Doc {
                        ctx: d.ctx,
                        index: k as usize,
                        kind: Kind::Embedded,
                        with_children: true,
                        drop_metadata: false,
                    },
                )?;
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Ok(())
}

/// The `http` block, leaving out what is unset as the model's `serde` attributes do.
fn write_http(out: &mut Vec<u8>, http: &Http) -> WriteResult {
    let mut outer = b'{';
    let r = &http.request;
    if *r != HttpRequest::default() {
        out.push(outer);
        outer = b',';
        out.extend_from_slice(b"\"request\":");
        let mut sep = b'{';
        for (k, v) in [
            ("method", r.method.as_deref()),
            ("url", r.url.as_deref()),
            ("user_agent", r.user_agent.as_deref()),
            ("client_ip", r.client_ip.as_deref()),
        ] {
            if let Some(v) = v {
                out.push(sep);
                sep = b',';
                write_str(out, k)?;
                out.push(b':');
                write_str(out, v)?;
            }
        }
        for (k, v) in [("x_forwarded_for", r.x_forwarded_for), ("traced", r.traced)] {
            if v {
                out.push(sep);
                sep = b',';
                write_str(out, k)?;
                out.extend_from_slice(b":true");
            }
        }
        out.push(b'}');
    }
    let resp = &http.response;
    if *resp != HttpResponse::default() {
        out.push(outer);
        outer = b',';
        out.extend_from_slice(b"\"response\":");
        let mut sep = b'{';
        if let Some(status) = resp.status {
            out.push(sep);
            sep = b',';
            out.extend_from_slice(b"\"status\":");
            write_u64(out, u64::from(status));
        }
        if let Some(len) = resp.content_length {
            out.push(sep);
            out.extend_from_slice(b"\"content_length\":");
            write_u64(out, len);
        }
        out.push(b'}');
    }
    if outer == b'{' {
        out.push(b'{');
    }
    out.push(b'}');
    Ok(())
}

struct SegmentAws<'a> {
    rule_name: Option<&'a str>,
    resources: Option<&'a crate::plugins::ResourceData>,
}

impl SegmentAws<'_> {
    /// The keys this block writes for `resources`.
    fn keys(resources: Option<&crate::plugins::ResourceData>) -> Vec<&'static str> {
        let mut keys = vec!["xray"];
        if let Some(r) = resources {
            for (key, present) in [
                ("ecs", r.ecs.is_some()),
                ("ec2", r.ec2.is_some()),
                ("eks", r.eks.is_some()),
                ("account_id", r.account_id.is_some()),
                ("cloudwatch_logs", r.cloudwatch_logs.is_some()),
            ] {
                if present {
                    keys.push(key);
                }
            }
        }
        keys
    }
}

impl Serialize for SegmentAws<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "xray",
            &XRayInfo {
                rule_name: self.rule_name,
            },
        )?;
        if let Some(r) = self.resources {
            for (key, value) in [("ecs", &r.ecs), ("ec2", &r.ec2), ("eks", &r.eks)] {
                if let Some(v) = value {
                    m.serialize_entry(key, v)?;
                }
            }
            if let Some(account) = &r.account_id {
                m.serialize_entry("account_id", account)?;
            }
            if let Some(logs) = &r.cloudwatch_logs {
                m.serialize_entry("cloudwatch_logs", logs)?;
            }
        }
        m.end()
    }
}

struct XRayInfo<'a> {
    rule_name: Option<&'a str>,
}

impl Serialize for XRayInfo<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("sdk", SDK_NAME)?;
        m.serialize_entry("sdk_version", SDK_VERSION)?;
        if let Some(rule) = self.rule_name {
            m.serialize_entry("sampling_rule_name", rule)?;
        }
        m.end()
    }
}

struct Service<'a> {
    version: Option<&'a str>,
}

impl Serialize for Service<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(v) = self.version {
            m.serialize_entry("version", v)?;
        }
        m.serialize_entry("runtime", "rust")?;
        m.serialize_entry("runtime_version", RUSTC_VERSION)?;
        m.end()
    }
}

/// Writes one datagram for `doc` at the end of `buf`; returns its range if it fits.
fn write(buf: &mut Vec<u8>, doc: &Doc<'_>) -> Option<(usize, usize)> {
    let start = buf.len();
    buf.extend_from_slice(DAEMON_HEADER);
    let ok = write_doc(buf, doc).is_ok();
    let end = buf.len();
    if ok && end - start <= MAX_DATAGRAM_SIZE {
        Some((start, end))
    } else {
        buf.truncate(start);
        None
    }
}

fn emit_tree(
    ctx: &Ctx<'_>,
    index: usize,
    kind: Kind,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(Outcome),
) {
    let mut doc = Doc {
        ctx,
        index,
        kind,
        with_children: true,
        drop_metadata: false,
    };
    if let Some((start, end)) = write(buf, &doc) {
        return sink(Outcome::Datagram {
            start,
            end,
            truncated: false,
        });
    }
    let kids = ctx.scratch.children_of(index);
    if !kids.is_empty() {
        for &k in kids {
            emit_tree(ctx, k as usize, Kind::Independent, buf, sink);
        }
        doc.with_children = false;
        if let Some((start, end)) = write(buf, &doc) {
            return sink(Outcome::Datagram {
                start,
                end,
                truncated: false,
            });
        }
    }
    doc.with_children = false;
    doc.drop_metadata = true;
    match write(buf, &doc) {
        Some((start, end)) => sink(Outcome::Datagram {
            start,
            end,
            truncated: true,
        }),
        None => sink(Outcome::TooLarge),
    }
}

/// Longest text kept in a `cause` or `sql` value of a document that did not fit otherwise.
const SHORTENED_TEXT_BYTES: usize = 1024;

/// Frames kept per exception in a document that did not fit otherwise.
const SHORTENED_STACK_FRAMES: usize = 10;
/// Exceptions kept in the `cause` of a document over the limit.
const SHORTENED_EXCEPTIONS: usize = 10;

/// `s` cut to [`SHORTENED_TEXT_BYTES`] on a character boundary, with a marker saying so.
fn shorten(s: &mut String) {
    if s.len() <= SHORTENED_TEXT_BYTES {
        return;
    }
    let mut end = SHORTENED_TEXT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("... (cut: document over 64 KiB)");
}

/// A `cause` for a document over the limit (the last step before it is dropped): messages,
/// types and frames cut short, each exception's stack kept to its innermost frames (the rest
/// counted in `truncated`).
fn shortened_cause(cause: &Cause) -> Cause {
    let mut cause = cause.clone();
    if let Some(dir) = &mut cause.working_directory {
        shorten(dir);
    }
    cause.paths.truncate(SHORTENED_STACK_FRAMES);
    cause.paths.iter_mut().for_each(shorten);
    crate::model::truncate_exceptions(&mut cause.exceptions, SHORTENED_EXCEPTIONS);
    for e in &mut cause.exceptions {
        e.message.iter_mut().for_each(shorten);
        e.kind.iter_mut().for_each(shorten);
        if e.stack.len() > SHORTENED_STACK_FRAMES {
            let cut = u32::try_from(e.stack.len() - SHORTENED_STACK_FRAMES).unwrap_or(u32::MAX);
            e.truncated = Some(e.truncated.unwrap_or(0).saturating_add(cut));
            e.stack.truncate(SHORTENED_STACK_FRAMES);
        }
        for frame in &mut e.stack {
            frame.path.iter_mut().for_each(shorten);
            frame.label.iter_mut().for_each(shorten);
        }
    }
    cause
}

/// An `sql` block for a document over the limit: every text cut short.
fn shortened_sql(sql: &Sql) -> Sql {
    let mut sql = sql.clone();
    for text in [
        &mut sql.connection_string,
        &mut sql.url,
        &mut sql.sanitized_query,
        &mut sql.database_type,
        &mut sql.database_version,
        &mut sql.driver_version,
        &mut sql.user,
        &mut sql.preparation,
    ] {
        text.iter_mut().for_each(shorten);
    }
    sql
}

/// Serializes a batch into datagrams appended to `buf`, reporting each through `sink`.
pub(crate) fn documents(
    batch: &Batch,
    env: &Env<'_>,
    scratch: &mut Scratch,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(Outcome),
) {
    scratch.index(&batch.entities);
    let mut constant = std::mem::take(&mut scratch.constant);
    let (aws, service) = if batch.is_segment {
        constant.prepare_aws(env, batch.rule_name.as_ref());
        constant.prepare_service(env.service_version);
        (
            constant.find_aws(env, batch.rule_name.as_ref()),
            constant.service.as_ref().map(|(_, raw)| &**raw),
        )
    } else {
        (None, None)
    };
    let ctx = Ctx {
        batch,
        scratch,
        env,
        aws,
        service,
    };
    if batch.is_segment {
        if !batch.entities.is_empty() {
            emit_tree(&ctx, 0, Kind::Segment, buf, sink);
        }
        // Subtrees begun under a subsegment that had already been streamed: their parent is
        // no longer in the batch, so they go out on their own, under its ID.
        for (i, e) in batch.entities.iter().enumerate().skip(1) {
            if e.parent == NO_PARENT {
                emit_tree(&ctx, i, Kind::Independent, buf, sink);
            }
        }
    } else {
        for (i, e) in batch.entities.iter().enumerate() {
            if e.parent == NO_PARENT {
                emit_tree(&ctx, i, Kind::Independent, buf, sink);
            }
        }
    }
    scratch.constant = constant;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_the_same_numbers_as_the_float_form() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases = vec![
            0,
            1,
            10,
            999_999,
            1_000_000,
            1_732_290_000_000_000,
            1_732_290_000_100_000,
        ];
        for _ in 0..10_000 {
            // xorshift: spread over plausible epoch microseconds.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(1_600_000_000_000_000 + x % 400_000_000_000_000);
        }
        for us in cases {
            let mut out = Vec::new();
            write_seconds(&mut out, us);
            let text = std::str::from_utf8(&out).unwrap();
            let parsed: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, us as f64 / 1_000_000.0, "{us} written as {text}");
            assert!(!text.ends_with("0") || text.ends_with(".0"), "{text}");
        }
    }

    #[test]
    fn segment_aws_block_has_what_the_plugins_found_and_names_its_keys() {
        let found = crate::plugins::ResourceData {
            origin: Some("AWS::ECS::Container"),
            ecs: Some(serde_json::json!({"container": "host-1"})),
            account_id: Some("123456789012".into()),
            cloudwatch_logs: Some(serde_json::json!([{"log_group": "/ecs/app"}])),
            ..Default::default()
        };
        let block = SegmentAws {
            rule_name: Some("api"),
            resources: Some(&found),
        };
        let v = serde_json::to_value(&block).unwrap();
        assert_eq!(v["xray"]["sampling_rule_name"], "api");
        assert_eq!(v["ecs"]["container"], "host-1");
        assert_eq!(v["account_id"], "123456789012");
        assert_eq!(v["cloudwatch_logs"][0]["log_group"], "/ecs/app");
        let mut written: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut named = SegmentAws::keys(Some(&found));
        written.sort_unstable();
        named.sort_unstable();
        assert_eq!(written, named);
        assert_eq!(SegmentAws::keys(None), ["xray"]);
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote\"",
            "back\\slash",
            "ctl\u{1}\n\t",
            "é 日本",
            "\u{7f}",
            "a\"b\\c\u{0}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn integers() {
        for n in [0, 7, 10, 429, 65_535, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn http_blocks_leave_out_what_is_unset() {
        let cases = [
            (Http::default(), "{}"),
            (
                Http {
                    request: HttpRequest {
                        method: Some("GET".into()),
                        url: Some("http://a/b?c=\"d\"".into()),
                        x_forwarded_for: true,
                        ..HttpRequest::default()
                    },
                    response: HttpResponse::default(),
                },
                r#"{"request":{"method":"GET","url":"http://a/b?c=\"d\"","x_forwarded_for":true}}"#,
            ),
            (
                Http {
                    request: HttpRequest::default(),
                    response: HttpResponse {
                        status: Some(503),
                        content_length: None,
                    },
                },
                r#"{"response":{"status":503}}"#,
            ),
        ];
        for (http, expected) in cases {
            let mut out = Vec::new();
            write_http(&mut out, &http).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
            // The same JSON as the model's own serde form.
            assert_eq!(serde_json::to_string(&http).unwrap(), expected);
        }
    }
}
