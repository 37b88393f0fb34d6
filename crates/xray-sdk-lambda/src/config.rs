//! The recorder a function uses, configured the way Lambda expects.

use xray_sdk::plugins::Plugins;
use xray_sdk::{ConfigError, Recorder, RecorderBuilder};

/// Environment variables Lambda sets that this crate reads.
pub mod env {
    /// The function's name (the invocation subsegments' name and the recorder's).
    pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    /// How many invocations one execution environment runs at once (Lambda Managed
    /// Instances); above 1, `_X_AMZN_TRACE_ID` is never read.
    pub const MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
    /// The trace header of the current invocation, set by sequential runtimes only.
    pub const TRACE_ID: &str = "_X_AMZN_TRACE_ID";
    /// Set in every Lambda execution environment.
    pub const TASK_ROOT: &str = "LAMBDA_TASK_ROOT";
}

/// The file the official SDKs touch to tell Lambda that an X-Ray SDK is initialized.
const INITIALIZED_DIR: &str = "/tmp/.aws-xray";
const INITIALIZED_FILE: &str = "/tmp/.aws-xray/initialized";

/// A [`RecorderBuilder`] with Lambda's settings:
///
/// - documents are rendered and sent on the thread that finishes them, before it goes on
///   ([`RecorderBuilder::send_inline`]): no emitter thread, nothing left in a queue when the
///   execution environment is frozen after the response;
/// - every subsegment is sent as soon as it ends (streaming threshold 0, as the official
///   SDKs do on Lambda), so what finished is already sent if the function times out;
/// - no centralized sampling (Lambda decides: the invocation's `Sampled` flag is final) and
///   no environment plugins (no metadata endpoint is called);
/// - the service name is the function's (`AWS_LAMBDA_FUNCTION_NAME`).
///
/// The `AWS_XRAY_*` variables still apply when the recorder is built, as everywhere:
/// `AWS_XRAY_DAEMON_ADDRESS` (Lambda sets it to its daemon), `AWS_XRAY_CONTEXT_MISSING`,
/// `AWS_XRAY_SDK_ENABLED`.
pub fn recorder_builder() -> RecorderBuilder {
    let name = std::env::var(env::FUNCTION_NAME)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "lambda-function".to_owned());
    Recorder::builder()
        .service_name(name)
        .send_inline(true)
        .streaming_threshold(0)
        .centralized_sampling(false)
        .plugins(Plugins::none())
}

/// Builds the recorder of [`recorder_builder`], installs it as the process-wide recorder
/// ([`Recorder::global`], when none is yet) and, in a
/// Lambda execution environment, touches `/tmp/.aws-xray/initialized` as the official SDKs
/// do. Fails on an invalid `AWS_XRAY_*` value, naming it.
pub fn recorder() -> Result<Recorder, ConfigError> {
    let recorder = recorder_builder().build()?;
    // A recorder installed before stays the global one.
    let _ = recorder.install_global();
    if std::env::var_os(env::TASK_ROOT).is_some() {
        signal_initialized();
    }
    Ok(recorder)
}

fn signal_initialized() {
    let touched = std::fs::create_dir_all(INITIALIZED_DIR).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(INITIALIZED_FILE)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
    });
    if let Err(e) = touched {
        tracing::debug!(error = %e, path = INITIALIZED_FILE, "could not signal X-Ray SDK initialization");
    }
}

/// `AWS_LAMBDA_MAX_CONCURRENCY` as `lambda_runtime` reads it: a positive integer, else 1.
pub(crate) fn max_concurrency() -> u32 {
    max_concurrency_from(std::env::var(env::MAX_CONCURRENCY).ok().as_deref())
}

pub(crate) fn max_concurrency_from(value: Option<&str>) -> u32 {
    value
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_read_as_the_runtime_reads_it() {
        assert_eq!(max_concurrency_from(None), 1);
        assert_eq!(max_concurrency_from(Some("")), 1);
        assert_eq!(max_concurrency_from(Some("0")), 1);
        assert_eq!(max_concurrency_from(Some("-4")), 1);
        assert_eq!(max_concurrency_from(Some("many")), 1);
        assert_eq!(max_concurrency_from(Some("1")), 1);
        assert_eq!(max_concurrency_from(Some("8")), 8);
    }
}
