//! Segment documents as JSON, on the emitter thread.
//!
//! A batch becomes one datagram when it fits. When it does not, each child subtree is sent as
//! an independent subsegment (`type`, `trace_id`, `parent_id`) and the parent without its
//! children, recursively; a single document that still does not fit loses its metadata, and
//! is dropped (and counted) only if even that is not enough.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use super::{DAEMON_HEADER, MAX_DATAGRAM_SIZE};
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
            if e.parent != NO_PARENT {
                if let Some(slot) = self.offsets.get_mut(e.parent as usize + 1) {
                    *slot += 1;
                }
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
            if e.parent != NO_PARENT {
                if let Some(pos) = self.fill.get_mut(e.parent as usize) {
                    self.children[*pos as usize] = i as u32;
                    *pos += 1;
                }
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

fn seconds(us: u64) -> f64 {
    us as f64 / 1_000_000.0
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.ctx.batch.entities[self.index];
        let ext = e.ext.as_deref();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &e.name)?;
        m.serialize_entry("id", &e.id)?;
        if self.kind != Kind::Embedded {
            m.serialize_entry("trace_id", &self.ctx.batch.trace_id)?;
        }
        m.serialize_entry("start_time", &seconds(e.start_us))?;
        match e.end_us {
            Some(end) => m.serialize_entry("end_time", &seconds(end))?,
            None => m.serialize_entry("in_progress", &true)?,
        }
        if self.kind == Kind::Independent {
            m.serialize_entry("type", "subsegment")?;
        }
        if self.kind != Kind::Embedded {
            if let Some(p) = &e.parent_id {
                m.serialize_entry("parent_id", p)?;
            }
        }
        if let Some(ns) = e.namespace {
            m.serialize_entry("namespace", ns.as_str())?;
        }
        if e.flags & FLAG_ERROR != 0 {
            m.serialize_entry("error", &true)?;
        }
        if e.flags & FLAG_THROTTLE != 0 {
            m.serialize_entry("throttle", &true)?;
        }
        if e.flags & FLAG_FAULT != 0 {
            m.serialize_entry("fault", &true)?;
        }
        if self.kind == Kind::Segment {
            let res = self.ctx.env.resources.get();
            match self.ctx.aws {
                Some(raw) => m.serialize_entry("aws", raw)?,
                None => m.serialize_entry(
                    "aws",
                    &SegmentAws {
                        rule_name: self.ctx.batch.rule_name.as_deref(),
                        resources: res,
                    },
                )?,
            }
            let origin = ext
                .and_then(|x| x.origin.as_deref())
                .or_else(|| res.and_then(|r| r.origin));
            if let Some(origin) = origin {
                m.serialize_entry("origin", origin)?;
            }
            let own_version = ext.and_then(|x| x.service_version.as_deref());
            match (own_version, self.ctx.service) {
                (None, Some(raw)) => m.serialize_entry("service", raw)?,
                _ => m.serialize_entry(
                    "service",
                    &Service {
                        version: own_version.or(self.ctx.env.service_version),
                    },
                )?,
            }
        }
        if let Some(x) = ext {
            if let Some(http) = &x.http {
                m.serialize_entry("http", http)?;
            }
            if self.kind != Kind::Segment && !x.aws.is_empty() {
                m.serialize_entry("aws", &AwsFields(&x.aws))?;
            }
            if let Some(user) = &x.user {
                m.serialize_entry("user", user)?;
            }
            if let Some(arn) = &x.resource_arn {
                m.serialize_entry("resource_arn", arn)?;
            }
            if let Some(sql) = &x.sql {
                m.serialize_entry("sql", sql)?;
            }
            if let Some(cause) = &x.cause {
                m.serialize_entry("cause", cause)?;
            }
            if !x.annotations.is_empty() {
                m.serialize_entry("annotations", &Annotations(&x.annotations))?;
            }
            if self.drop_metadata {
                m.serialize_entry(
                    "metadata",
                    &serde_json::json!({"xray_sdk": {"truncated": "metadata removed: document over 64 KiB"}}),
                )?;
            } else if let Some(meta) = &x.metadata {
                m.serialize_entry("metadata", meta)?;
            }
            if !x.precursor_ids.is_empty() {
                m.serialize_entry("precursor_ids", &x.precursor_ids)?;
            }
        }
        if self.with_children {
            let kids = self.ctx.scratch.children_of(self.index);
            if !kids.is_empty() {
                m.serialize_entry(
                    "subsegments",
                    &Children {
                        ctx: self.ctx,
                        kids,
                    },
                )?;
            }
        }
        m.end()
    }
}

struct Children<'a> {
    ctx: &'a Ctx<'a>,
    kids: &'a [u32],
}

impl Serialize for Children<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.kids.len()))?;
        for &k in self.kids {
            seq.serialize_element(&Doc {
                ctx: self.ctx,
                index: k as usize,
                kind: Kind::Embedded,
                with_children: true,
                drop_metadata: false,
            })?;
        }
        seq.end()
    }
}

struct AwsFields<'a>(&'a [(std::borrow::Cow<'static, str>, serde_json::Value)]);

impl Serialize for AwsFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct Annotations<'a>(
    &'a [(
        std::borrow::Cow<'static, str>,
        crate::model::AnnotationValue,
    )],
);

impl Serialize for Annotations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct SegmentAws<'a> {
    rule_name: Option<&'a str>,
    resources: Option<&'a crate::plugins::ResourceData>,
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
    let ok = serde_json::to_writer(&mut *buf, doc).is_ok();
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
    } else {
        for (i, e) in batch.entities.iter().enumerate() {
            if e.parent == NO_PARENT {
                emit_tree(&ctx, i, Kind::Independent, buf, sink);
            }
        }
    }
    scratch.constant = constant;
}
