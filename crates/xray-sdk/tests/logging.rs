//! What the SDK says through `tracing`: one info line when a recorder starts (daemon, sampling,
//! enabled or not), and at debug level each segment's sampling decision and what made it.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use xray_sdk::sampling::{LocalRules, LocalSampler};
use xray_sdk::{Recorder, Sampler, SamplingDecision, SamplingRequest, TraceHeader};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Runs `f` with a subscriber filtered by `filter` (as `RUST_LOG` would be) and returns what
/// it logged.
fn logged(filter: &str, f: impl FnOnce()) -> String {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = logs.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

fn builder() -> xray_sdk::RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name("shop")
        .daemon_address("127.0.0.1:2999")
        .panic_stacks(false)
}

const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

#[test]
fn the_start_line_says_where_segments_go_and_how_sampling_decides() {
    let text = logged("xray_sdk=info", || {
        builder().build().unwrap();
    });
    let line = text.lines().find(|l| l.contains("X-Ray recorder")).unwrap();
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("enabled: sending segments over UDP to 127.0.0.1:2999"),
        "{line}"
    );
    assert!(line.contains("service=shop"), "{line}");
    assert!(
        line.contains("centralized rules from the daemon at 127.0.0.1:2999"),
        "{line}"
    );
    assert!(line.contains("built-in local rule"), "{line}");
    assert_eq!(text.lines().count(), 1, "{text}");

    let dir = std::env::temp_dir().join(format!("xray-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.1}}"#,
    )
    .unwrap();
    let text = logged("xray_sdk=info", || {
        builder()
            .centralized_sampling(false)
            .sampling_rules_file(&rules)
            .build()
            .unwrap();
    });
    assert!(
        text.contains(&format!("sampling=local rules from {}", rules.display())),
        "{text}"
    );
    assert!(!text.contains("centralized"), "{text}");
    std::fs::remove_dir_all(&dir).ok();

    let text = logged("xray_sdk=info", || {
        builder().enabled(false).build().unwrap();
    });
    assert!(text.contains("X-Ray recorder disabled"), "{text}");
    assert!(text.contains("nothing is recorded or sent"), "{text}");
}

#[derive(Debug)]
struct NamedRule;

impl Sampler for NamedRule {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        let mut d = SamplingDecision::new(request.url_path != Some("/health"));
        d.rule_name = Some("no-health".into());
        d
    }
}

#[test]
fn each_decision_is_logged_at_debug_with_what_made_it() {
    let text = logged("xray_sdk=debug", || {
        let recorder = builder()
            .sampler(LocalSampler::new(LocalRules::new(1, 0.0)))
            .build()
            .unwrap();
        recorder.segment("shop").begin().end();
        let unsampled = TraceHeader::parse(&format!("{ROOT};Sampled=0"));
        recorder.segment("shop").header(&unsampled).begin().end();
        recorder.segment("shop").sampled(true).begin().end();

        let named = builder().sampler(NamedRule).build().unwrap();
        let health = SamplingRequest {
            url_path: Some("/health"),
            ..Default::default()
        };
        named.segment("shop").sampling_request(health).begin().end();
    });
    let decisions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("X-Ray sampling decision"))
        .collect();
    assert_eq!(decisions.len(), 4, "{text}");
    assert!(decisions.iter().all(|l| l.contains(" DEBUG ")), "{text}");
    // The sampler's decisions carry the facts the rules matched on.
    assert!(
        decisions[0].contains("service=\"shop\""),
        "{}",
        decisions[0]
    );
    assert!(
        decisions[3].contains("path=\"/health\""),
        "{}",
        decisions[3]
    );
    assert!(
        decisions[0].contains("sampled by the custom sampler")
            && decisions[0].contains("sampled=true"),
        "{}",
        decisions[0]
    );
    assert!(
        decisions[1]
            .contains("not sampled by the incoming trace header (X-Amzn-Trace-Id or traceparent)")
            && decisions[1].contains("trace_id=1-5759e988-bd862e3fe1be46a994272793"),
        "{}",
        decisions[1]
    );
    assert!(decisions[2].contains("sampled by code"), "{}", decisions[2]);
    assert!(
        decisions[3].contains("not sampled by rule \"no-health\"")
            && decisions[3].contains("sampled=false"),
        "{}",
        decisions[3]
    );

    // At info level (`RUST_LOG=xray_sdk=info`), no line per request.
    let text = logged("xray_sdk=info", || {
        let recorder = builder().build().unwrap();
        recorder.segment("shop").begin().end();
    });
    assert!(!text.contains("sampling decision"), "{text}");
}

#[test]
fn local_rules_decisions_name_the_local_rules() {
    let text = logged("xray_sdk=debug", || {
        let recorder = builder().centralized_sampling(false).build().unwrap();
        recorder.segment("shop").begin().end();
    });
    let line = text
        .lines()
        .find(|l| l.contains("X-Ray sampling decision"))
        .unwrap();
    assert!(line.contains("sampled by the local rules"), "{line}");
}
