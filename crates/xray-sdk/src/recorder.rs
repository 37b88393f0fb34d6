//! The [`Recorder`]: configuration, sampling and the emitter, shared by every segment.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{ConfigError, DaemonAddress, EnvConfig, TracesExporter};
use crate::emitter::{Emitter, EmitterStats, FlushError, Sink};
use crate::handle::Entity;
use crate::header::TraceHeader;
use crate::held::HeldFacade;
use crate::model::SwitchGuard;
use crate::plugins::{Plugins, Resources};
use crate::sampling::{self, Sampler, SamplingDecision, SamplingRequest, SamplingSettings};
use crate::segment_builder::{SegmentBuilder, Source};

/// Default number of completed subsegments a segment holds before they are streamed as
/// separate documents (the Java and Node SDKs' default).
pub const DEFAULT_STREAMING_THRESHOLD: u32 = 100;

/// Default capacity of the emitter queue, in segments.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;

#[derive(Debug, Clone)]
pub(crate) struct RecorderConfig {
    pub(crate) service_name: Cow<'static, str>,
    /// `AWS_XRAY_TRACING_NAME` as read at build time (`None` with `ignore_env()`).
    pub(crate) env_segment_name: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) streaming_threshold: u32,
    pub(crate) daemon: DaemonAddress,
    pub(crate) service_version: Option<String>,
    /// Outgoing HTTP calls carry W3C `traceparent` besides `X-Amzn-Trace-Id`.
    pub(crate) propagate_traceparent: bool,
    /// What decided when a sampler's decision names no rule, for the debug log.
    pub(crate) unnamed_rule: &'static str,
}

pub(crate) struct RecorderInner {
    pub(crate) config: RecorderConfig,
    /// What segments are made from: the sink they send to (each segment holds it too), the
    /// sampler and the plugins' findings.
    pub(crate) source: Source,
    /// Keep stack capture for errors and panics on while this recorder lives.
    pub(crate) _stack_switches: [Option<SwitchGuard>; 2],
}

/// Records segments and sends them to the X-Ray daemon. Cheap to clone (a reference count);
/// every clone shares one emitter thread and one sampler.
///
/// ```
/// use xray_sdk::{Record, Recorder};
///
/// // `AWS_XRAY_*` variables, when set, override what is given here (see `RecorderBuilder`).
/// let recorder = Recorder::builder()
///     .service_name("orders")
///     .daemon_address("127.0.0.1:2000")
///     .centralized_sampling(false) // local rules only: no sampling API at that address
///     .build()
///     .expect("valid configuration");
/// let segment = recorder.segment("orders").begin();
/// let sub = segment.begin_subsegment("validate");
/// sub.annotate("order_id", 42);
/// sub.end();
/// segment.end(); // queued; sent by the emitter thread
/// ```
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("service_name", &self.inner.config.service_name)
            .field("enabled", &self.inner.config.enabled)
            .field("daemon", &self.inner.config.daemon)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Recorder`].
///
/// **The environment wins over code**, as in the official SDKs, so operators can reconfigure
/// a deployed service without a new build: `AWS_XRAY_DAEMON_ADDRESS`,
/// `AWS_XRAY_TRACING_NAME` (the service name, and the names of the tower layer's
/// `SegmentNaming`), `AWS_XRAY_SDK_ENABLED` and `AWS_XRAY_SAMPLING_RULES`, when set, replace
/// what is given here (see [`crate::config`]); an invalid value is an error of
/// [`build`](RecorderBuilder::build). [`ignore_env`](RecorderBuilder::ignore_env) makes the
/// builder read none of them. `AWS_XRAY_CONTEXT_MISSING` is not a recorder setting (see
/// [`ContextMissing`](crate::ContextMissing)).
///
/// ```
/// use xray_sdk::Recorder;
///
/// // Deployed: the environment may override the name and the daemon address.
/// let recorder = Recorder::builder().service_name("orders").build()?;
/// # let _ = recorder;
///
/// // Only what the code says, whatever the environment.
/// let fixed = Recorder::builder()
///     .service_name("orders")
///     .enabled(false)
///     .ignore_env()
///     .build()?;
/// assert_eq!(fixed.service_name(), "orders");
/// assert!(!fixed.is_enabled());
/// # Ok::<(), xray_sdk::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RecorderBuilder {
    service_name: Cow<'static, str>,
    daemon_address: Option<String>,
    enabled: bool,
    streaming_threshold: u32,
    queue_capacity: usize,
    sampler: Option<Arc<dyn Sampler>>,
    sampling_rules: Option<PathBuf>,
    centralized_sampling: bool,
    plugins: Plugins,
    service_version: Option<String>,
    error_stacks: bool,
    panic_stacks: bool,
    read_env: bool,
    send_inline: bool,
    propagate_traceparent: bool,
    exporter: TracesExporter,
    #[cfg(feature = "otlp")]
    otlp: crate::otlp::OtlpSettings,
}

impl Default for RecorderBuilder {
    fn default() -> Self {
        RecorderBuilder {
            service_name: Cow::Borrowed("unnamed-service"),
            daemon_address: None,
            enabled: true,
            streaming_threshold: DEFAULT_STREAMING_THRESHOLD,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            sampler: None,
            sampling_rules: None,
            centralized_sampling: true,
            plugins: Plugins::default(),
            service_version: None,
            error_stacks: false,
            panic_stacks: true,
            read_env: true,
            send_inline: false,
            propagate_traceparent: false,
            exporter: TracesExporter::XRay,
            #[cfg(feature = "otlp")]
            otlp: crate::otlp::OtlpSettings::new(),
        }
    }
}

impl RecorderBuilder {
    /// The service name: the default segment name (`AWS_XRAY_TRACING_NAME` overrides it).
    pub fn service_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.service_name = name.into();
        self
    }

    /// The daemon address: `host:port` or `udp:host:port tcp:host:port`.
    pub fn daemon_address(mut self, address: impl Into<String>) -> Self {
        self.daemon_address = Some(address.into());
        self
    }

    /// Turns recording on or off. When off, nothing is sent, but trace headers still propagate.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Completed subsegments a segment may hold before they are streamed as separate
    /// documents (default 100; 0 streams each subsegment as soon as it completes).
    pub fn streaming_threshold(mut self, threshold: u32) -> Self {
        self.streaming_threshold = threshold;
        self
    }

    /// Capacity of the emitter queue, in segments (default 8192), counting those the emitter
    /// thread has taken and not yet finished. When full, new segments are dropped and counted.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Uses this sampler instead of the rules-based one.
    pub fn sampler(mut self, sampler: impl Sampler) -> Self {
        self.sampler = Some(Arc::new(sampler));
        self
    }

    /// Loads local sampling rules from a JSON file (`AWS_XRAY_SAMPLING_RULES` overrides it).
    pub fn sampling_rules_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sampling_rules = Some(path.into());
        self
    }

    /// Fetches sampling rules from the daemon (default on); local rules are the fallback.
    pub fn centralized_sampling(mut self, on: bool) -> Self {
        self.centralized_sampling = on;
        self
    }

    /// Which environment plugins (ECS, EC2, EKS) add their `aws` block and `origin`.
    pub fn plugins(mut self, plugins: Plugins) -> Self {
        self.plugins = plugins;
        self
    }

    /// The `service.version` written on every segment.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Renders and sends every finished segment (and every subsegment streamed ahead of it) on
    /// the thread that finished it, instead of queueing it for a background thread; no
    /// emitter thread is started. For AWS Lambda, where a function's documents must be sent
    /// before its response is posted and the process may be frozen right after: each send
    /// then costs the finishing thread a serialization and a UDP `send`. Elsewhere, keep the
    /// default (off): the request path then never sends.
    pub fn send_inline(mut self, on: bool) -> Self {
        self.send_inline = on;
        self
    }

    /// Records where each error was recorded: the first exception of a cause built from an
    /// error (`record_error`, [`Cause::from_error`](crate::Cause::from_error)) carries the stack
    /// (default off). The stack is captured unresolved when the error is recorded (5 to
    /// 25 µs per error, by depth), and resolved to names, files and lines on the emitter's
    /// thread (0.06 to 0.2 ms); [`CapturedStack::capture`](crate::model::CapturedStack::capture)
    /// has the details and `cargo bench -p xray-sdk --bench causes` measures both.
    /// `RUST_BACKTRACE` does not turn it on: it is commonly set in production for panic
    /// messages, and capturing and resolving a stack on the request path cost 0.05 to
    /// 0.2 ms per error. No official SDK has an environment variable for this (Python's
    /// `max_trace_back` is a setting in code), so there is none here either.
    ///
    /// Process-wide: errors are captured while any recorder built with this on is alive.
    pub fn error_stacks(mut self, on: bool) -> Self {
        self.error_stacks = on;
        self
    }

    /// Records where each panic happened (default on): the recorder installs a panic hook,
    /// once per process and in front of the one already set, that captures the panicking
    /// thread's stack unresolved; [`crate::panic::exception`] attaches it to the exception
    /// of a caught panic, and the emitter resolves it. Process-wide, like `error_stacks`.
    /// A disabled recorder installs nothing.
    pub fn panic_stacks(mut self, on: bool) -> Self {
        self.panic_stacks = on;
        self
    }

    /// Outgoing HTTP calls (the reqwest middleware, the tower client layer) carry the W3C
    /// `traceparent` header, and the `tracestate` that came in, besides `X-Amzn-Trace-Id`
    /// (default off), so that services instrumented with OpenTelemetry join the trace. Calls
    /// to AWS services carry the X-Ray header only. Incoming `traceparent` headers are read
    /// whatever this says.
    ///
    /// The environment wins when it decides, as for the other settings: `OTEL_PROPAGATORS`,
    /// when set, turns it on if it lists `tracecontext` and off otherwise; else
    /// `OTEL_TRACES_EXPORTER=otlp` turns it on (see [`crate::config`]).
    pub fn propagate_traceparent(mut self, on: bool) -> Self {
        self.propagate_traceparent = on;
        self
    }

    /// What sends the recording: segment documents over UDP (the default), OpenTelemetry
    /// spans over OTLP (feature `otlp`, configured with [`RecorderBuilder::otlp`] and the
    /// `OTEL_EXPORTER_OTLP_*` variables) or nothing. `OTEL_TRACES_EXPORTER` overrides it.
    /// Without the `otlp` feature, OTLP is logged as unavailable (once) and UDP is kept.
    pub fn exporter(mut self, exporter: TracesExporter) -> Self {
        self.exporter = exporter;
        self
    }

    /// OTLP settings (endpoint, protocol, headers, compression, timeout, batching,
    /// resource), used when the exporter is OTLP; the OpenTelemetry variables that are set
    /// override them (see [`crate::otlp`]).
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp(mut self, settings: crate::otlp::OtlpSettings) -> Self {
        self.otlp = settings;
        self
    }

    /// Reads no `AWS_XRAY_*` or `OTEL_*` environment variable: the values given here are the
    /// ones used, and [`Recorder::env_segment_name`] is `None` (the tower layer keeps its names
    /// too).
    pub fn ignore_env(mut self) -> Self {
        self.read_env = false;
        self
    }

    /// Builds the recorder; any invalid value (given here or in the environment) is an error
    /// that names the setting, the value and what was expected.
    pub fn build(self) -> Result<Recorder, ConfigError> {
        let env = if self.read_env {
            let (env, mut errors) = EnvConfig::from_process();
            if !errors.is_empty() {
                return Err(errors.remove(0));
            }
            env
        } else {
            EnvConfig::default()
        };
        self.build_with(env)
    }

    fn build_with(self, env: EnvConfig) -> Result<Recorder, ConfigError> {
        crate::clock::warm_up();
        let daemon = match (&env.daemon_address, &self.daemon_address) {
            (Some(a), _) => a.clone(),
            (None, Some(code)) => {
                DaemonAddress::parse(code).map_err(|e| e.for_setting("daemon_address"))?
            }
            (None, None) => DaemonAddress::default(),
        };
        if self.queue_capacity == 0 {
            return Err(ConfigError::new("queue_capacity", "0", "at least 1"));
        }
        let env_segment_name = env.tracing_name;
        let service_name = match &env_segment_name {
            Some(n) => Cow::Owned(n.clone()),
            None => self.service_name,
        };
        let enabled = env.enabled.unwrap_or(self.enabled);
        let rules_from_env = env.sampling_rules.is_some();
        let rules_file = env.sampling_rules.or(self.sampling_rules);
        let centralized = self.centralized_sampling && enabled && self.sampler.is_none();
        let exporter = env.traces_exporter.unwrap_or(self.exporter);
        let config = RecorderConfig {
            service_name: crate::model::sanitize_name(service_name),
            env_segment_name,
            enabled,
            streaming_threshold: self.streaming_threshold,
            daemon: daemon.clone(),
            service_version: self.service_version,
            // OTLP output means the services around speak OpenTelemetry: `traceparent` goes
            // out too, unless `OTEL_PROPAGATORS` (or the variable's exporter) says otherwise.
            propagate_traceparent: env
                .propagate_traceparent
                .unwrap_or(self.propagate_traceparent || matches!(exporter, TracesExporter::Otlp)),
            unnamed_rule: if self.sampler.is_some() {
                "the custom sampler"
            } else {
                "the local rules"
            },
        };
        let sampling_mode = output::sampling_mode(
            self.sampler.is_some(),
            centralized,
            rules_file.as_deref(),
            &daemon,
        );
        let sampler = match self.sampler {
            Some(s) => s,
            None => sampling::build_sampler(&SamplingSettings {
                rules_setting: if rules_from_env {
                    crate::config::env::SAMPLING_RULES
                } else {
                    "sampling_rules_file"
                },
                rules_file,
                centralized,
                daemon: daemon.clone(),
            })?,
        };
        let resources = Arc::new(Resources::default());
        if config.enabled {
            crate::plugins::detect_in_background(self.plugins, Arc::clone(&resources));
        }
        let (emitter, sending) = if config.enabled {
            output::start(
                exporter,
                &output::Settings {
                    queue_capacity: self.queue_capacity,
                    send_inline: self.send_inline,
                    config: &config,
                    resources: &resources,
                    #[cfg(feature = "otlp")]
                    otlp: (&self.otlp, &env.otel),
                },
            )?
        } else {
            (Emitter::disabled(), String::new())
        };
        let sink = Arc::new(Sink {
            emitter,
            streaming_threshold: config.streaming_threshold,
        });
        let error_stacks =
            (config.enabled && self.error_stacks).then(crate::model::enable_error_stacks);
        if config.enabled {
            crate::panic::install();
        }
        let panic_stacks = (config.enabled && self.panic_stacks)
            .then(crate::panic::enable_panic_stacks)
            .flatten();
        if config.enabled {
            tracing::info!(
                service = %config.service_name,
                daemon = %daemon,
                sampling = %sampling_mode,
                traceparent = config.propagate_traceparent,
                error_stacks = error_stacks.is_some(),
                panic_stacks = panic_stacks.is_some(),
                "X-Ray recorder enabled: sending {sending}",
            );
        } else {
            tracing::info!(
                service = %config.service_name,
                "X-Ray recorder disabled (AWS_XRAY_SDK_ENABLED or enabled(false)): nothing is \
                 recorded or sent; trace headers still propagate",
            );
        }
        Ok(Recorder {
            inner: Arc::new(RecorderInner {
                source: Source {
                    enabled: config.enabled,
                    unnamed_rule: config.unnamed_rule,
                    sink,
                    sampler,
                    resources,
                    traceparent: config.propagate_traceparent,
                },
                config,
                _stack_switches: [error_stacks, panic_stacks],
            }),
        })
    }
}

impl Recorder {
    /// A builder with the defaults.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// A recorder configured from the environment only. Invalid variables are logged at error
    /// level and replaced by their defaults; this never fails.
    pub fn from_env() -> Recorder {
        let (env, errors) = EnvConfig::from_process();
        for e in &errors {
            tracing::error!(error = %e, "ignoring invalid X-Ray setting; using the default");
        }
        Recorder::from_env_config(env)
    }

    pub(crate) fn from_env_config(env: EnvConfig) -> Recorder {
        match RecorderBuilder::default().build_with(env.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "invalid X-Ray configuration; using the defaults");
                // A bad rules file costs only the rules, bad OTLP settings only OTLP: keep
                // the rest of the environment.
                let without_rules = EnvConfig {
                    sampling_rules: None,
                    ..env
                };
                let without_otlp = EnvConfig {
                    traces_exporter: None,
                    otel: Vec::new(),
                    ..without_rules.clone()
                };
                RecorderBuilder::default()
                    .build_with(without_rules)
                    .or_else(|_| RecorderBuilder::default().build_with(without_otlp))
                    .or_else(|_| {
                        RecorderBuilder::default()
                            .ignore_env()
                            .build_with(EnvConfig::default())
                    })
                    .unwrap_or_else(|_| Recorder::disabled())
            }
        }
    }

    /// A recorder that records and sends nothing (trace headers still propagate).
    pub fn disabled() -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                config: RecorderConfig {
                    service_name: Cow::Borrowed("unnamed-service"),
                    env_segment_name: None,
                    enabled: false,
                    streaming_threshold: DEFAULT_STREAMING_THRESHOLD,
                    daemon: DaemonAddress::default(),
                    service_version: None,
                    propagate_traceparent: false,
                    unnamed_rule: "the disabled recorder",
                },
                source: Source {
                    enabled: false,
                    unnamed_rule: "the disabled recorder",
                    sink: Arc::new(Sink {
                        emitter: Emitter::disabled(),
                        streaming_threshold: DEFAULT_STREAMING_THRESHOLD,
                    }),
                    sampler: Arc::new(sampling::NeverSample),
                    resources: Arc::new(Resources::default()),
                    traceparent: false,
                },
                _stack_switches: [None, None],
            }),
        }
    }

    /// The service name (from code or `AWS_XRAY_TRACING_NAME`).
    pub fn service_name(&self) -> &str {
        &self.inner.config.service_name
    }

    /// The segment name the environment imposes: `AWS_XRAY_TRACING_NAME` as this recorder
    /// read it when it was built, or `None` when it is unset or the recorder was built with
    /// [`ignore_env`](RecorderBuilder::ignore_env). Adapters that name segments with names
    /// given in code (the tower layer's `SegmentNaming`) let it win, as the official SDKs do,
    /// and read it here rather than from the process environment, so `ignore_env()` holds
    /// for them too.
    ///
    /// ```
    /// use xray_sdk::Recorder;
    ///
    /// let recorder = Recorder::builder().service_name("orders").ignore_env().build()?;
    /// assert_eq!(recorder.env_segment_name(), None);
    /// assert_eq!(recorder.service_name(), "orders");
    /// # Ok::<(), xray_sdk::ConfigError>(())
    /// ```
    pub fn env_segment_name(&self) -> Option<&str> {
        self.inner.config.env_segment_name.as_deref()
    }

    /// True unless the SDK was disabled in code or by `AWS_XRAY_SDK_ENABLED`.
    pub fn is_enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The daemon address in use.
    pub fn daemon_address(&self) -> &DaemonAddress {
        &self.inner.config.daemon
    }

    /// Whether outgoing HTTP calls carry the W3C `traceparent` (and `tracestate`) besides
    /// `X-Amzn-Trace-Id` (see [`RecorderBuilder::propagate_traceparent`]). Every
    /// [`Context`](crate::Context) of this recorder's traces tells the same
    /// ([`Context::propagates_traceparent`](crate::Context::propagates_traceparent)), which is
    /// what the client adapters read.
    pub fn propagates_traceparent(&self) -> bool {
        self.inner.config.propagate_traceparent
    }

    /// The `origin` the environment plugins detected (e.g. `AWS::ECS::Container`), once
    /// detection has finished; used as the service type for sampling.
    pub fn origin(&self) -> Option<&'static str> {
        self.inner.source.resources.get().and_then(|r| r.origin)
    }

    /// The sampler in use.
    pub fn sampler(&self) -> &dyn Sampler {
        &*self.inner.source.sampler
    }

    /// Asks the sampler about a request.
    pub fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        if self.inner.config.enabled {
            self.inner.source.sampler.should_sample(request)
        } else {
            SamplingDecision::new(false)
        }
    }

    /// A facade for a segment that another party records, such as the function segment AWS
    /// Lambda records for each invocation: its trace ID is the header's `Root` and its ID the
    /// header's `Parent`, and it is never sent; subsegments begun under it are sent as
    /// independent subsegments under that ID. The header's `Sampled` flag is final (the
    /// sampler is not asked): a facade is recorded only for `Sampled=1` with a `Root` and a
    /// `Parent`, and otherwise only propagates the decision.
    ///
    /// ```
    /// use xray_sdk::{Recorder, TraceHeader};
    /// # let recorder = Recorder::disabled();
    /// let invocation = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
    /// let facade = recorder.facade(&invocation);
    /// let work = facade.begin_subsegment("compute");
    /// work.end();
    /// facade.end(); // nothing is sent for the facade itself
    /// ```
    pub fn facade(&self, header: &TraceHeader) -> Entity {
        crate::segment_builder::facade(&self.inner.source, header)
    }

    /// A facade whose trace is not known yet (see [`HeldFacade`]): what is recorded under it
    /// is held in memory until [`HeldFacade::send_under`] moves it into a trace. For work
    /// done before the trace it belongs to arrives, such as an AWS Lambda function's init
    /// phase, which is sent with its first invocation.
    pub fn held_facade(&self) -> HeldFacade {
        HeldFacade::new(&self.inner.source)
    }

    /// Starts a segment: the one way to open one. `recorder.segment(name).begin()` starts a
    /// new trace and lets the sampler decide; the builder's settings continue a trace from
    /// an incoming header ([`SegmentBuilder::header`]), give the sampler the request's facts
    /// ([`SegmentBuilder::sampling_request`]) or force the decision
    /// ([`SegmentBuilder::sampled`]). A service that receives requests should pass the
    /// incoming `X-Amzn-Trace-Id`, or its segments start traces of their own (the tower
    /// layer does this for you).
    ///
    /// ```
    /// use xray_sdk::{Recorder, TraceHeader};
    /// # let recorder = Recorder::disabled();
    /// // A job that starts its own trace.
    /// let job = recorder.segment("nightly-report").begin();
    /// job.end();
    ///
    /// // A request that continues its caller's trace.
    /// let incoming = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
    /// let segment = recorder.segment("api").header(&incoming).begin();
    /// assert_eq!(segment.trace_id(), incoming.root().unwrap());
    /// ```
    pub fn segment<'a>(&'a self, name: impl Into<Cow<'a, str>>) -> SegmentBuilder<'a> {
        SegmentBuilder::new(&self.inner.source, name.into())
    }

    /// What segments are made from (for the shutdown).
    pub(crate) fn source(&self) -> &Source {
        &self.inner.source
    }

    /// Emitter counters: documents sent, dropped, send errors.
    pub fn stats(&self) -> EmitterStats {
        self.inner.source.sink.emitter.stats()
    }

    /// Waits until everything queued before this call has been sent, or `timeout` passes.
    ///
    /// This blocks the calling thread (it sleeps in short steps while the emitter works): call
    /// it at shutdown, or through `tokio::task::spawn_blocking` from async code that must not
    /// stall its runtime.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.inner.source.sink.emitter.flush(timeout)
    }

    /// Makes this recorder the process's own, for code that has no other way to reach one
    /// ([`Recorder::global`]). Nothing in the SDK changes behaviour because of it: the
    /// adapters are given their recorder or find the current context, and the
    /// context-missing policy does not depend on it (see
    /// [`ContextMissing`](crate::ContextMissing)).
    /// Fails if one was already installed, which stays.
    pub fn install_global(&self) -> Result<(), GlobalAlreadyInstalled> {
        GLOBAL
            .set(self.clone())
            .map_err(|_| GlobalAlreadyInstalled)?;
        Ok(())
    }

    /// The process-wide recorder, if one was installed.
    pub fn global() -> Option<&'static Recorder> {
        GLOBAL.get()
    }
}

static GLOBAL: OnceLock<Recorder> = OnceLock::new();

/// [`Recorder::install_global`] was called before: the first recorder stays the global one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalAlreadyInstalled;

impl fmt::Display for GlobalAlreadyInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an X-Ray recorder is already installed as the global one")
    }
}

impl std::error::Error for GlobalAlreadyInstalled {}

mod output;

#[cfg(test)]
mod tests;
