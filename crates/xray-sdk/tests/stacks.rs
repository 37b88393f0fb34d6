//! Stacks in causes: captured on the request path without resolving symbols, resolved on the
//! emitter's thread when the document is written; for errors only when `error_stacks` is on,
//! for panics through the recorder's panic hook and `xray_sdk::panic::exception`.
//!
//! Capture is process-wide (one panic hook, one switch per kind), so each test here keeps
//! the switch it does not test off, and tests that need a switch off run in one function.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::panic::catch_unwind;
use std::time::Duration;

use serde_json::Value;
use xray_sdk::model::{CapturedStack, MAX_STACK_FRAMES, StackFrame};
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Cause, Exception, Record, Recorder};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct ConfigMissing;

impl fmt::Display for ConfigMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config missing")
    }
}

impl std::error::Error for ConfigMissing {}

fn recorder(capture: &UdpCapture, error_stacks: bool, panic_stacks: bool) -> Recorder {
    capture
        .recorder_builder("stacks")
        .error_stacks(error_stacks)
        .panic_stacks(panic_stacks)
        .build()
        .unwrap()
}

/// Sends one segment with `record` applied and returns its first exception.
fn first_exception(
    capture: &UdpCapture,
    recorder: &Recorder,
    record: impl FnOnce(&xray_sdk::Entity),
) -> Value {
    let segment = recorder.segment("stacks").begin();
    record(&segment);
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs = capture.documents(1, WAIT);
    assert_eq!(docs.len(), 1);
    docs[0]["cause"]["exceptions"][0].clone()
}

/// The function whose frame must come first in the error's stack; returns the line of the
/// `record_error` call.
#[inline(never)]
fn load_config(segment: &xray_sdk::Entity) -> u32 {
    let line = line!() + 1;
    segment.record_error(&ConfigMissing);
    line
}

#[test]
fn error_stacks_only_when_enabled_resolved_on_the_emitter() {
    let capture = UdpCapture::start().unwrap();

    // Off by default: no stack captured.
    let off = recorder(&capture, false, false);
    assert!(
        Cause::from_error(&ConfigMissing).exceptions[0]
            .captured
            .is_none()
    );
    let ex = first_exception(&capture, &off, |s| s.record_error(&ConfigMissing));
    assert_eq!(ex["message"], "config missing");
    assert!(ex.get("stack").is_none(), "{ex}");

    // On: the first frame is the function that recorded the error, with its file and line.
    let on = recorder(&capture, true, false);
    let mut line = 0;
    let ex = first_exception(&capture, &on, |s| line = load_config(s));
    let frame = &ex["stack"][0];
    assert!(
        frame["label"]
            .as_str()
            .unwrap()
            .ends_with("stacks::load_config"),
        "{ex:#}"
    );
    assert!(
        frame["path"].as_str().unwrap().ends_with("tests/stacks.rs"),
        "{frame}"
    );
    assert_eq!(frame["line"], line, "{frame}");
    assert!(ex["stack"].as_array().unwrap().len() > 1);

    // Captured where the error is recorded, resolved only when the emitter writes it.
    let cause = Cause::from_error(&ConfigMissing);
    let captured = cause.exceptions[0].captured.clone().expect("captured");
    let segment = on.segment("stacks").begin();
    segment.add_cause(cause);
    segment.set_fault();
    assert!(!captured.is_resolved());
    segment.end();
    on.flush(WAIT).unwrap();
    let docs = capture.documents(1, WAIT);
    assert!(docs[0]["cause"]["exceptions"][0]["stack"][0].is_object());
    assert!(captured.is_resolved());

    // Off again once no recorder with it on is alive.
    drop(on);
    assert!(
        Cause::from_error(&ConfigMissing).exceptions[0]
            .captured
            .is_none()
    );
}

#[inline(never)]
fn deep(n: usize) -> CapturedStack {
    if n == 0 {
        CapturedStack::capture()
    } else {
        std::hint::black_box(deep(n - 1))
    }
}

#[test]
fn a_deep_stack_keeps_the_innermost_frames_after_the_given_ones() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder(&capture, false, false);
    let mut exception = Exception::new("deep", "Deep");
    exception.stack.push(StackFrame {
        path: Some("src/jobs.rs".into()),
        line: Some(7),
        label: Some("given".into()),
    });
    exception.captured = Some(deep(MAX_STACK_FRAMES + 20));
    let ex = first_exception(&capture, &recorder, |s| s.add_exception(exception));
    let stack = ex["stack"].as_array().unwrap();
    assert_eq!(stack.len(), MAX_STACK_FRAMES);
    assert_eq!(stack[0]["label"], "given");
    assert!(
        stack[1]["label"]
            .as_str()
            .unwrap()
            .ends_with("stacks::deep"),
        "{ex:#}"
    );
    assert!(
        stack[MAX_STACK_FRAMES - 1]["label"]
            .as_str()
            .unwrap()
            .ends_with("stacks::deep")
    );
    assert!(
        ex["truncated"].as_u64().unwrap() >= 20,
        "{}",
        ex["truncated"]
    );
}

/// Panics with a message that names the line of the `expect`.
#[inline(never)]
fn checkout_total(items: Option<u32>) -> u32 {
    items.expect(concat!("no items at line ", line!())) + 1
}

fn panic_line(message: &str) -> u64 {
    message.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn panics_carry_the_frames_of_the_code_that_panicked() {
    let capture = UdpCapture::start().unwrap();

    // No recorder with panic stacks alive: the message only.
    let without = recorder(&capture, false, false);
    let payload = catch_unwind(|| checkout_total(None)).unwrap_err();
    let ex = xray_sdk::panic::exception(&*payload);
    assert_eq!(ex.kind.as_deref(), Some("panic"));
    assert!(ex.captured.is_none());
    drop(without);

    let recorder = recorder(&capture, false, true);
    let ex = first_exception(&capture, &recorder, |s| {
        let payload = catch_unwind(|| checkout_total(None)).unwrap_err();
        s.set_fault();
        s.add_exception(xray_sdk::panic::exception(&*payload));
    });
    assert_eq!(ex["type"], "panic");
    let message = ex["message"].as_str().unwrap();
    assert!(message.starts_with("no items at line "), "{message}");
    let frame = &ex["stack"][0];
    assert!(
        frame["label"]
            .as_str()
            .unwrap()
            .ends_with("stacks::checkout_total"),
        "{ex:#}"
    );
    assert!(
        frame["path"].as_str().unwrap().ends_with("tests/stacks.rs"),
        "{frame}"
    );
    assert_eq!(frame["line"].as_u64(), Some(panic_line(message)), "{frame}");

    // Without the payload (a panic answered further in): counted, and the latest exception.
    let before = xray_sdk::panic::panics_on_this_thread();
    let _ = catch_unwind(|| checkout_total(None));
    assert_eq!(xray_sdk::panic::panics_on_this_thread(), before + 1);
    let latest = xray_sdk::panic::latest_exception().unwrap();
    assert_eq!(latest.kind.as_deref(), Some("panic"));
    assert!(
        latest
            .message
            .as_deref()
            .unwrap()
            .starts_with("no items at line ")
    );
    let (frames, _) = latest.captured.as_ref().unwrap().resolve();
    assert!(
        frames[0]
            .label
            .as_deref()
            .unwrap()
            .ends_with("stacks::checkout_total"),
        "{frames:#?}"
    );
    std::thread::spawn(|| {
        assert_eq!(xray_sdk::panic::panics_on_this_thread(), 0);
        assert!(xray_sdk::panic::latest_exception().is_none());
    })
    .join()
    .unwrap();

    // A payload that is not this thread's latest panic gets no frames.
    let first = catch_unwind(|| checkout_total(None)).unwrap_err();
    let _second = catch_unwind(|| panic!("another")).unwrap_err();
    assert!(xray_sdk::panic::stack(&*first).is_none());
    // Nor does the same panic caught on another thread.
    let third = catch_unwind(|| checkout_total(None)).unwrap_err();
    let message = xray_sdk::panic::message(&*third).to_owned();
    assert!(xray_sdk::panic::stack(&*third).is_some());
    std::thread::spawn(move || {
        let payload: Box<dyn std::any::Any + Send> = Box::new(message);
        assert!(xray_sdk::panic::stack(&*payload).is_none());
    })
    .join()
    .unwrap();
}

/// `RUST_BACKTRACE=1`, common in production, no longer makes every recorded error capture
/// and resolve a stack on the request path. Runs this test binary again with it set.
#[test]
fn rust_backtrace_does_not_capture_error_stacks() {
    if std::env::var_os("XRAY_STACKS_CHILD").is_some() {
        let bt = std::backtrace::Backtrace::capture();
        assert_eq!(bt.status(), std::backtrace::BacktraceStatus::Captured);
        let cause = Cause::from_error(&ConfigMissing);
        assert!(cause.exceptions[0].captured.is_none());
        assert!(cause.exceptions[0].stack.is_empty());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["rust_backtrace_does_not_capture_error_stacks", "--exact"])
        .env("RUST_BACKTRACE", "1")
        .env("XRAY_STACKS_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}
