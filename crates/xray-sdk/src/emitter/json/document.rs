//! One segment or subsegment document, written by hand from a batch's typed fields.
//!
//! Every key is a constant, IDs and times are written from their integers, and only
//! strings that came from users go through JSON escaping (and only when they need it).
//! Values of open shape (metadata, other `aws` fields) are already JSON text in the batch;
//! `cause` and `sql` go through `serde_json`.

use serde_json::value::RawValue;

use super::blocks::{ProcessInfo, SegmentAws, Service};
use crate::deferred::AwsFieldWriter;
use crate::json::{
    WriteResult, key, write_hex_str, write_i64, write_seconds, write_str, write_u64,
};
use crate::model::{Cause, Sql};
use crate::trace::{
    AwsKey, Batch, EntityData, FLAG_ERROR, FLAG_FAULT, FLAG_THROTTLE, Item, MoreKey, NO_PARENT,
    Scalar,
};

/// Indexes of a batch, rebuilt for each batch in reused buffers: the children and the
/// extras of every entity.
#[derive(Default)]
pub(crate) struct Index {
    /// For entity i, its children are `children[child_offsets[i]..child_offsets[i + 1]]`.
    child_offsets: Vec<u32>,
    children: Vec<u32>,
    /// For entity i, its extras are `extras[extra_offsets[i]..extra_offsets[i + 1]]`.
    extra_offsets: Vec<u32>,
    extras: Vec<u32>,
    fill: Vec<u32>,
}

impl Index {
    pub(crate) fn build(&mut self, batch: &Batch) {
        let n = batch.entities.len();
        let parents = batch
            .entities
            .iter()
            .enumerate()
            .filter(|(_, e)| e.parent != NO_PARENT)
            .map(|(i, e)| (e.parent, i as u32));
        group(
            n,
            parents,
            &mut self.child_offsets,
            &mut self.children,
            &mut self.fill,
        );
        let owners = batch
            .extras
            .iter()
            .enumerate()
            .map(|(i, x)| (x.entity, i as u32));
        group(
            n,
            owners,
            &mut self.extra_offsets,
            &mut self.extras,
            &mut self.fill,
        );
    }

    pub(crate) fn children_of(&self, i: usize) -> &[u32] {
        slice(&self.child_offsets, &self.children, i)
    }

    pub(crate) fn extras_of(&self, i: usize) -> &[u32] {
        slice(&self.extra_offsets, &self.extras, i)
    }
}

/// Groups `(group, member)` pairs by group (a counting sort that keeps the members' order).
fn group(
    n: usize,
    pairs: impl Iterator<Item = (u32, u32)> + Clone,
    offsets: &mut Vec<u32>,
    members: &mut Vec<u32>,
    fill: &mut Vec<u32>,
) {
    offsets.clear();
    offsets.resize(n + 1, 0);
    for (g, _) in pairs.clone() {
        if let Some(slot) = offsets.get_mut(g as usize + 1) {
            *slot += 1;
        }
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    members.clear();
    members.resize(offsets[n] as usize, 0);
    fill.clear();
    fill.extend_from_slice(&offsets[..n]);
    for (g, m) in pairs {
        if let Some(pos) = fill.get_mut(g as usize) {
            members[*pos as usize] = m;
            *pos += 1;
        }
    }
}

fn slice<'a>(offsets: &[u32], members: &'a [u32], i: usize) -> &'a [u32] {
    match (offsets.get(i), offsets.get(i + 1)) {
        (Some(&a), Some(&b)) => &members[a as usize..b as usize],
        _ => &[],
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The segment itself.
    Segment,
    /// A subsegment inside its parent's document.
    Embedded,
    /// A subsegment document of its own (`type`, `trace_id`, `parent_id`).
    Independent,
}

/// What writing one batch needs.
pub(crate) struct Ctx<'a> {
    pub(crate) batch: &'a Batch,
    pub(crate) index: &'a Index,
    pub(crate) info: &'a ProcessInfo,
    /// The segment's `aws` block, when cached.
    pub(crate) aws: Option<&'a RawValue>,
    /// The `service` block for the process-wide version, when cached.
    pub(crate) service: Option<&'a RawValue>,
}

/// One document to write.
pub(crate) struct Doc<'a> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) entity: usize,
    pub(crate) kind: Kind,
    pub(crate) with_children: bool,
    /// The last resort of a document over the size limit: no metadata, `cause` and `sql`
    /// cut short.
    pub(crate) shorten: bool,
}

pub(crate) fn write_doc(out: &mut Vec<u8>, d: &Doc<'_>) -> WriteResult {
    let batch = d.ctx.batch;
    let Some(e) = batch.entities.get(d.entity) else {
        return Ok(());
    };
    out.extend_from_slice(b"{\"name\":");
    write_str(out, batch.str(e.name))?;
    key(out, "id");
    write_hex_str(out, &e.id.to_bytes());
    if d.kind != Kind::Embedded {
        key(out, "trace_id");
        write_hex_str(out, &batch.trace_id.to_bytes());
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
        && let Some(p) = &e.parent_id()
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
    let extras = d.ctx.index.extras_of(d.entity);
    if d.kind == Kind::Segment {
        write_segment_blocks(out, d, e, extras)?;
    }
    if e.http.has_request() || e.http.has_response() {
        key(out, "http");
        write_http(out, batch, e)?;
    }
    if d.kind != Kind::Segment {
        let mut w = AwsFieldWriter::new(out);
        write_aws_fields(&mut w, batch, e, extras);
        w.finish()?;
    }
    if e.has_extras {
        for (k, more) in [
            ("user", MoreKey::User),
            ("resource_arn", MoreKey::ResourceArn),
        ] {
            if let Some(v) = batch.more(extras, more) {
                key(out, k);
                write_str(out, v)?;
            }
        }
    }
    write_extras(out, d, extras)?;
    if d.with_children {
        let kids = d.ctx.index.children_of(d.entity);
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
                        entity: k as usize,
                        kind: Kind::Embedded,
                        with_children: true,
                        shorten: false,
                    },
                )?;
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Ok(())
}

/// `aws` (the SDK's and the plugins' keys, then the segment's own fields, which cannot
/// replace them), `origin` and `service`.
fn write_segment_blocks(
    out: &mut Vec<u8>,
    d: &Doc<'_>,
    e: &EntityData,
    extras: &[u32],
) -> WriteResult {
    let batch = d.ctx.batch;
    let res = d.ctx.info.resources.get();
    key(out, "aws");
    let block_start = out.len();
    match d.ctx.aws {
        Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
        None => serde_json::to_writer(
            &mut *out,
            &SegmentAws {
                rule_name: batch.rule_name.as_deref(),
                resources: res,
            },
        )?,
    }
    let own = !e.aws.is_empty()
        || extras.iter().any(|&x| {
            matches!(
                batch.extras[x as usize].item,
                Item::Aws { .. } | Item::Deferred(_)
            )
        });
    if own && out.last() == Some(&b'}') && out.len() > block_start + 2 {
        out.pop();
        let taken = SegmentAws::keys(res);
        let mut w = AwsFieldWriter::continuing(out, &taken);
        write_aws_fields(&mut w, batch, e, extras);
        // Closes the reopened block.
        w.finish()?;
    }
    let origin = batch
        .more(extras, MoreKey::Origin)
        .or_else(|| res.and_then(|r| r.origin));
    if let Some(origin) = origin {
        key(out, "origin");
        write_str(out, origin)?;
    }
    key(out, "service");
    match (batch.more(extras, MoreKey::ServiceVersion), d.ctx.service) {
        (None, Some(raw)) => out.extend_from_slice(raw.get().as_bytes()),
        (own, _) => serde_json::to_writer(
            &mut *out,
            &Service {
                version: own.or(d.ctx.info.service_version.as_deref()),
            },
        )?,
    }
    Ok(())
}

/// The typed `aws` fields, then the other ones set directly, then the deferred ones.
pub(crate) fn write_aws_fields<'b>(
    w: &mut AwsFieldWriter<'b>,
    batch: &'b Batch,
    e: &EntityData,
    extras: &[u32],
) {
    for k in AwsKey::ALL.into_iter().take(3) {
        if let Some(t) = e.aws.get(k) {
            w.str(k.as_str(), batch.str(t));
        }
    }
    if let Some(n) = e.aws.retries() {
        w.u64("retries", u64::from(n));
    }
    for k in AwsKey::ALL.into_iter().skip(3) {
        if let Some(t) = e.aws.get(k) {
            w.str(k.as_str(), batch.str(t));
        }
    }
    for &x in extras {
        if let Item::Aws { key, json } = &batch.extras[x as usize].item {
            w.raw(batch.str(*key), batch.str(*json));
        }
    }
    for &x in extras {
        if let Item::Deferred(fields) = &batch.extras[x as usize].item {
            w.write_guarded(fields.as_ref());
        }
    }
}

/// The `http` block, leaving out what is unset.
fn write_http(out: &mut Vec<u8>, batch: &Batch, e: &EntityData) -> WriteResult {
    let h = &e.http;
    let mut outer = b'{';
    if h.has_request() {
        out.push(outer);
        outer = b',';
        out.extend_from_slice(b"\"request\":");
        let mut sep = b'{';
        for (k, v) in [
            ("method", h.method),
            ("url", h.url),
            ("user_agent", h.user_agent),
            ("client_ip", h.client_ip),
        ] {
            if let Some(v) = v {
                out.push(sep);
                sep = b',';
                write_str(out, k)?;
                out.push(b':');
                write_str(out, batch.str(v))?;
            }
        }
        for (k, v) in [
            ("x_forwarded_for", h.x_forwarded_for()),
            ("traced", h.traced()),
        ] {
            if v {
                out.push(sep);
                sep = b',';
                write_str(out, k)?;
                out.extend_from_slice(b":true");
            }
        }
        out.push(b'}');
    }
    if h.has_response() {
        out.push(outer);
        outer = b',';
        out.extend_from_slice(b"\"response\":");
        let mut sep = b'{';
        if let Some(status) = h.status() {
            out.push(sep);
            sep = b',';
            out.extend_from_slice(b"\"status\":");
            write_u64(out, u64::from(status));
        }
        if let Some(len) = h.content_length() {
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

/// `sql`, `cause`, `annotations`, `metadata` and `precursor_ids`.
fn write_extras(out: &mut Vec<u8>, d: &Doc<'_>, extras: &[u32]) -> WriteResult {
    let batch = d.ctx.batch;
    let items = || extras.iter().map(|&x| &batch.extras[x as usize].item);
    for item in items() {
        if let Item::Sql(sql) = item {
            key(out, "sql");
            if d.shorten {
                serde_json::to_writer(&mut *out, &super::split::shortened_sql(sql))?;
            } else {
                serde_json::to_writer(&mut *out, &**sql as &Sql)?;
            }
        }
    }
    for item in items() {
        if let Item::Cause(cause) = item {
            key(out, "cause");
            // Stacks captured on the request path are resolved here, on the emitter's
            // thread (once: a document written again reuses the frames).
            let cause = cause.with_resolved_stacks();
            if d.shorten {
                serde_json::to_writer(&mut *out, &super::split::shortened_cause(&cause))?;
            } else {
                serde_json::to_writer(&mut *out, &*cause as &Cause)?;
            }
        }
    }
    let mut sep = b'{';
    for item in items() {
        if let Item::Annotation { key: k, value } = item {
            if sep == b'{' {
                key(out, "annotations");
            }
            out.push(sep);
            sep = b',';
            write_str(out, batch.str(*k))?;
            out.push(b':');
            match *value {
                Scalar::Str(s) => write_str(out, batch.str(s))?,
                Scalar::Int(i) => write_i64(out, i),
                Scalar::Float(f) => serde_json::to_writer(&mut *out, &f)?,
                Scalar::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            }
        }
    }
    if sep != b'{' {
        out.push(b'}');
    }
    if d.shorten {
        if items().any(|i| matches!(i, Item::Metadata { .. })) {
            out.extend_from_slice(
                b",\"metadata\":{\"xray_sdk\":{\"truncated\":\"metadata removed: document over 64 KiB\"}}",
            );
        }
    } else {
        write_metadata(out, batch, extras)?;
    }
    let mut sep = b'[';
    for item in items() {
        if let Item::Precursor(id) = item {
            if sep == b'[' {
                key(out, "precursor_ids");
            }
            out.push(sep);
            sep = b',';
            write_hex_str(out, &id.to_bytes());
        }
    }
    if sep != b'[' {
        out.push(b']');
    }
    Ok(())
}

/// `metadata`, grouped by namespace in the order the namespaces were first used.
fn write_metadata(out: &mut Vec<u8>, batch: &Batch, extras: &[u32]) -> WriteResult {
    let entries = || {
        extras
            .iter()
            .filter_map(|&x| match &batch.extras[x as usize].item {
                Item::Metadata {
                    namespace,
                    key,
                    json,
                } => Some((batch.str(*namespace), batch.str(*key), batch.str(*json))),
                _ => None,
            })
    };
    let mut outer = b'{';
    for (pos, (ns, _, _)) in entries().enumerate() {
        if entries().take(pos).any(|(n, _, _)| n == ns) {
            continue;
        }
        if outer == b'{' {
            key(out, "metadata");
        }
        out.push(outer);
        outer = b',';
        write_str(out, ns)?;
        out.push(b':');
        let mut sep = b'{';
        for (_, k, json) in entries().filter(|(n, _, _)| *n == ns) {
            out.push(sep);
            sep = b',';
            write_str(out, k)?;
            out.push(b':');
            out.extend_from_slice(json.as_bytes());
        }
        out.push(b'}');
    }
    if outer != b'{' {
        out.push(b'}');
    }
    Ok(())
}
