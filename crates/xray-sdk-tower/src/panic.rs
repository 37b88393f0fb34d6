//! Panics in the wrapped service: the cause they leave on the segment, and the response the
//! layer answers in their place.
//!
//! A panic hook, installed once by the first layer built and chained to whatever hook was
//! there before (which still runs, and still prints), notes on the panicking thread the
//! message and place of a panic that happens while a recorded request's work is current,
//! with the ID of that request's segment. The note is a thread-local value: the hook takes no
//! lock and touches no trace. The layer takes the note back when it catches the panic itself,
//! or when the response it sees says the request failed (5xx, or a gRPC status that is a
//! fault): a panic that a `CatchPanicLayer` *inside* the X-Ray layer turned into a response
//! becomes the segment's cause that way.

use std::any::Any;
use std::cell::RefCell;
use std::panic::PanicHookInfo;
use std::sync::Once;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use xray_sdk::model::StackFrame;
use xray_sdk::{EntityId, Exception};

use crate::grpc::{GRPC_MESSAGE, GRPC_STATUS};

/// The `type` of the exception a panic is recorded as.
pub(crate) const PANIC_TYPE: &str = "panic";

/// What the hook noted about the last panic on this thread.
#[derive(Debug)]
pub(crate) struct NotedPanic {
    segment: EntityId,
    message: String,
    file: String,
    line: u32,
}

thread_local! {
    static NOTED: RefCell<Option<NotedPanic>> = const { RefCell::new(None) };
}

/// Installs the hook, once per process (not from a thread that is panicking, where the
/// standard library refuses to change hooks).
pub(crate) fn install_hook() {
    static INSTALLED: Once = Once::new();
    if std::thread::panicking() {
        return;
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            note(info);
            previous(info);
        }));
    });
}

fn note(info: &PanicHookInfo<'_>) {
    // The segment of whatever recorded work is current; nothing for unsampled requests.
    let Some(segment) =
        xray_sdk::context::with_current(|c| c.and_then(|c| c.segment()).map(|s| s.id()))
    else {
        return;
    };
    let (file, line) = info
        .location()
        .map_or((String::new(), 0), |l| (l.file().to_owned(), l.line()));
    let noted = NotedPanic {
        segment,
        message: payload_message(info.payload()),
        file,
        line,
    };
    let _ = NOTED.try_with(|n| {
        if let Ok(mut n) = n.try_borrow_mut() {
            *n = Some(noted);
        }
    });
}

/// Takes this thread's note of a panic during the work of `segment`, if there is one.
pub(crate) fn take_noted(segment: EntityId) -> Option<NotedPanic> {
    NOTED
        .try_with(|n| {
            let mut n = n.try_borrow_mut().ok()?;
            if n.as_ref()?.segment == segment {
                n.take()
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

/// The message of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The exception for a panic: the hook's note (message and place) when there is one, else
/// the message of the payload the layer caught.
pub(crate) fn exception(
    payload: Option<&(dyn Any + Send)>,
    noted: Option<NotedPanic>,
) -> Exception {
    match noted {
        Some(noted) => {
            let mut exception = Exception::new(noted.message, PANIC_TYPE);
            if !noted.file.is_empty() {
                exception.stack.push(StackFrame {
                    path: Some(noted.file),
                    line: Some(noted.line),
                    label: None,
                });
            }
            exception
        }
        None => Exception::new(
            payload.map_or_else(|| "panic".to_owned(), payload_message),
            PANIC_TYPE,
        ),
    }
}

/// Turns `res` (an empty response) into the answer for a request whose handler panicked:
/// `500 Internal Server Error`, or for a gRPC call a trailers-only `INTERNAL` status (HTTP
/// 200, `grpc-status: 13`), which gRPC clients read as `Status::internal`.
pub(crate) fn answer<B>(res: &mut Response<B>, grpc: bool) {
    if grpc {
        *res.status_mut() = StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(GRPC_STATUS, HeaderValue::from_static("13"));
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static("Service panicked"));
    } else {
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        assert_eq!(payload_message(&"boom"), "boom");
        assert_eq!(payload_message(&String::from("bang")), "bang");
        assert_eq!(payload_message(&42u8), "panic with a non-string payload");
    }

    #[test]
    fn notes_are_taken_by_their_segment_only() {
        install_hook();
        let recorder = xray_sdk::Recorder::builder()
            .ignore_env()
            .sampler(xray_sdk::sampling::AlwaysSample)
            .centralized_sampling(false)
            .daemon_address("127.0.0.1:9")
            .build()
            .expect("recorder");
        let segment = recorder.begin_segment("svc");
        let sub = segment.begin_subsegment("step");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _current = sub.enter();
            panic!("noted {}", 7);
        }));
        assert!(caught.is_err());
        // Another segment's ID does not take it...
        assert!(take_noted(EntityId::new()).is_none());
        // ...the segment does, once, with the place of the panic.
        let noted = take_noted(segment.id()).expect("noted");
        assert_eq!(noted.message, "noted 7");
        assert!(noted.file.ends_with("panic.rs"), "{}", noted.file);
        assert!(noted.line > 0);
        assert!(take_noted(segment.id()).is_none());
        let exception = exception(None, Some(noted));
        assert_eq!(exception.kind.as_deref(), Some(PANIC_TYPE));
        assert_eq!(exception.stack.len(), 1);

        // Without a current context nothing is noted.
        assert!(std::panic::catch_unwind(|| panic!("unnoted")).is_err());
        assert!(take_noted(segment.id()).is_none());
    }
}
