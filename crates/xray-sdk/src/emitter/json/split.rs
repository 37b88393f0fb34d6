//! The 64 KiB limit: a batch becomes one datagram when it fits. When it does not, each child
//! subtree is sent as an independent subsegment and the parent without its children,
//! recursively; a single document that still does not fit loses its metadata and has its
//! `cause` and `sql` texts cut short, and is dropped (and counted) only if even that is not
//! enough.

use super::blocks::{ConstantBlocks, ProcessInfo};
use super::document::{Ctx, Doc, Index, Kind, write_doc};
use crate::emitter::{DAEMON_HEADER, MAX_DATAGRAM_SIZE};
use crate::model::{Cause, Sql, truncate_exceptions};
use crate::trace::{Batch, NO_PARENT};

/// A datagram written into the output buffer, or a document that could not be made to fit.
pub(crate) enum Outcome {
    Datagram {
        start: usize,
        end: usize,
        /// Metadata was removed (and texts cut) to make it fit.
        truncated: bool,
    },
    TooLarge,
}

/// Buffers reused from batch to batch.
#[derive(Default)]
pub(crate) struct Scratch {
    index: Index,
    constant: ConstantBlocks,
}

/// Writes a batch as datagrams appended to `buf`, reporting each through `sink`.
pub(crate) fn documents(
    batch: &Batch,
    info: &ProcessInfo,
    scratch: &mut Scratch,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(Outcome),
) {
    let Scratch { index, constant } = scratch;
    index.build(batch);
    if batch.is_segment {
        constant.prepare(info, batch.rule_name.as_ref());
    }
    let ctx = Ctx {
        batch,
        index,
        info,
        aws: constant.aws(info, batch.rule_name.as_ref()),
        service: constant.service(),
    };
    for (i, e) in batch.entities.iter().enumerate() {
        if i == 0 && batch.is_segment {
            if batch.facade {
                // Another party records the segment: its subsegments go out on their own.
                for &child in ctx.index.children_of(0) {
                    emit_tree(&ctx, child as usize, Kind::Independent, buf, sink);
                }
            } else {
                emit_tree(&ctx, 0, Kind::Segment, buf, sink);
            }
        } else if e.parent == NO_PARENT {
            // A streamed subtree, or work begun under a subsegment streamed earlier: on its
            // own, under its parent's ID.
            emit_tree(&ctx, i, Kind::Independent, buf, sink);
        }
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
    entity: usize,
    kind: Kind,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(Outcome),
) {
    let mut doc = Doc {
        ctx,
        entity,
        kind,
        with_children: true,
        shorten: false,
    };
    if let Some((start, end)) = write(buf, &doc) {
        return sink(Outcome::Datagram {
            start,
            end,
            truncated: false,
        });
    }
    let kids = ctx.index.children_of(entity);
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
    doc.shorten = true;
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
pub(crate) fn shortened_cause(cause: &Cause) -> Cause {
    let mut cause = cause.clone();
    if let Some(dir) = &mut cause.working_directory {
        shorten(dir);
    }
    cause.paths.truncate(SHORTENED_STACK_FRAMES);
    cause.paths.iter_mut().for_each(shorten);
    truncate_exceptions(&mut cause.exceptions, SHORTENED_EXCEPTIONS);
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
pub(crate) fn shortened_sql(sql: &Sql) -> Sql {
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
