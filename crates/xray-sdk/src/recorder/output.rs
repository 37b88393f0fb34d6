//! What sends a recorder's segments (UDP documents, OTLP spans or nothing), and the words the
//! start-up log line uses for it.

use std::sync::Arc;

use crate::config::{ConfigError, DaemonAddress, TracesExporter};
use crate::emitter::json::{ProcessInfo, UdpJson};
use crate::emitter::{Counters, Discard, Emitter, Exporter};
use crate::plugins::Resources;

use super::RecorderConfig;

/// The builder's settings the exporter needs.
pub(super) struct Settings<'a> {
    pub(super) queue_capacity: usize,
    pub(super) send_inline: bool,
    pub(super) config: &'a RecorderConfig,
    pub(super) resources: &'a Arc<Resources>,
    /// The builder's OTLP settings and the OpenTelemetry variables that are set.
    #[cfg(feature = "otlp")]
    pub(super) otlp: (&'a crate::otlp::OtlpSettings, &'a [(&'static str, String)]),
}

/// Starts the emitter for `exporter`; returns it with what it sends, for the log.
pub(super) fn start(
    exporter: TracesExporter,
    s: &Settings<'_>,
) -> Result<(Emitter, String), ConfigError> {
    let counters = Arc::new(Counters::default());
    let udp = || {
        let info = Arc::new(ProcessInfo {
            resources: Arc::clone(s.resources),
            service_version: s.config.service_version.clone(),
        });
        let exporter = UdpJson::new(s.config.daemon.udp().clone(), info, Arc::clone(&counters));
        let description = format!("segments over UDP to {}", s.config.daemon.udp());
        (emitter(s, &counters, exporter), description)
    };
    Ok(match exporter {
        TracesExporter::XRay => udp(),
        TracesExporter::None => (
            Emitter::inline(Arc::clone(&counters), Discard),
            "nothing (OTEL_TRACES_EXPORTER=none)".to_owned(),
        ),
        #[cfg(feature = "otlp")]
        TracesExporter::Otlp => {
            let built = crate::otlp::build(
                s.otlp.0,
                s.otlp.1,
                crate::otlp::Process {
                    service_name: &s.config.service_name,
                    service_version: s.config.service_version.as_deref(),
                    plugins: Arc::clone(s.resources),
                    daemon: s.config.daemon.udp(),
                },
                Arc::clone(&counters),
            )?;
            (emitter(s, &counters, built.exporter), built.description)
        }
        #[cfg(not(feature = "otlp"))]
        TracesExporter::Otlp => {
            otlp_unavailable();
            udp()
        }
    })
}
/// The emitter's thread for `exporter`, or the caller's thread with `send_inline`.
fn emitter(s: &Settings<'_>, counters: &Arc<Counters>, exporter: impl Exporter) -> Emitter {
    if s.send_inline {
        Emitter::inline(Arc::clone(counters), exporter)
    } else {
        Emitter::start(s.queue_capacity, Arc::clone(counters), exporter)
    }
}

/// Logs, once per process, that OTLP was asked for in a build without it.
#[cfg(not(feature = "otlp"))]
fn otlp_unavailable() {
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| {
        tracing::warn!(
            "OTEL_TRACES_EXPORTER=otlp (or exporter(Otlp)) asks for OpenTelemetry output, but \
             xray-sdk was built without its `otlp` feature: sending segment documents over UDP \
             instead"
        );
    });
}

/// How sampling is decided, for the start-up log line.
pub(super) fn sampling_mode(
    custom: bool,
    centralized: bool,
    rules_file: Option<&std::path::Path>,
    daemon: &DaemonAddress,
) -> String {
    if custom {
        return "custom sampler".to_owned();
    }
    let local = match rules_file {
        Some(path) => format!("local rules from {}", path.display()),
        None => "the built-in local rule (1 per second, then 5 %)".to_owned(),
    };
    if centralized {
        format!(
            "centralized rules from the daemon at {} (polled from the first request); {local} \
             until they arrive and whenever the daemon cannot be reached",
            daemon.tcp()
        )
    } else {
        local
    }
}
