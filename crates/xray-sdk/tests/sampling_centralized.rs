//! Centralized sampling against a real HTTP server on 127.0.0.1 playing the daemon's proxy:
//! rules, statistics, quotas, borrowing, fallback, recovery and garbage answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use xray_sdk::clock::ManualClock;
use xray_sdk::config::DaemonAddress;
use xray_sdk::sampling::{CentralizedSampler, LocalRules};
use xray_sdk::{Recorder, Sampler, SamplingRequest};

const T0: u64 = 1_700_000_000;

#[derive(Default)]
struct Daemon {
    rules_answer: String,
    /// Answers to successive `SamplingTargets` calls; the last one repeats.
    targets_answers: Vec<String>,
    rules_calls: Vec<(String, String)>,
    targets_calls: Vec<Value>,
}

type Shared = Arc<Mutex<Daemon>>;

/// An axum server on its own thread and runtime; dropping it closes every connection.
struct FakeDaemon {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn rules(State(s): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, String) {
    let mut d = s.lock().expect("lock");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    d.rules_calls.push((ct, body));
    (StatusCode::OK, d.rules_answer.clone())
}

async fn targets(State(s): State<Shared>, body: String) -> (StatusCode, String) {
    let mut d = s.lock().expect("lock");
    d.targets_calls
        .push(serde_json::from_str(&body).unwrap_or(Value::Null));
    let answer = if d.targets_answers.len() > 1 {
        d.targets_answers.remove(0)
    } else {
        d.targets_answers.first().cloned().unwrap_or_default()
    };
    (StatusCode::OK, answer)
}

impl FakeDaemon {
    fn start(state: Shared) -> FakeDaemon {
        FakeDaemon::start_on("127.0.0.1:0".parse().expect("addr"), state)
    }

    fn start_on(addr: SocketAddr, state: Shared) -> FakeDaemon {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let app = Router::new()
            .route("/GetSamplingRules", post(rules))
            .route("/SamplingTargets", post(targets))
            .with_state(Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // SO_REUSEADDR, so a restarted daemon gets its old port back.
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.set_reuseaddr(true).expect("reuseaddr");
                socket.bind(addr).expect("bind");
                let listener = socket.listen(64).expect("listen");
                bound_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                let _ = stop_rx.await;
            });
            // Dropping the runtime drops the server and its open connections.
        });
        let addr = bound_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server started");
        FakeDaemon {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn address(&self) -> DaemonAddress {
        DaemonAddress::parse(&self.addr.to_string()).expect("address")
    }

    fn stop(mut self) -> SocketAddr {
        self.shutdown();
        self.addr
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn rule(name: &str, priority: i64, rate: f64, reservoir: u64, method: &str, path: &str) -> Value {
    json!({
        "SamplingRule": {
            "RuleName": name, "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method,
            "URLPath": path, "Version": 1, "Attributes": {}
        },
        "CreatedAt": 1.53e9, "ModifiedAt": 1.53e9
    })
}

fn rules_answer(rules: Vec<Value>) -> String {
    json!({ "SamplingRuleRecords": rules }).to_string()
}

fn standard_rules() -> String {
    let mut invalid_version = rule("v2", 1, 1.0, 1, "*", "*");
    invalid_version["SamplingRule"]["Version"] = json!(2);
    let mut arn = rule("arn", 1, 1.0, 1, "*", "*");
    arn["SamplingRule"]["ResourceARN"] = json!("arn:aws:ecs:x");
    let mut attrs = rule("attrs", 1, 1.0, 1, "*", "*");
    attrs["SamplingRule"]["Attributes"] = json!({"a": "b"});
    rules_answer(vec![
        rule("Default", 10000, 0.0, 0, "*", "*"),
        rule("health", 20, 0.0, 0, "GET", "/health"),
        rule("checkout", 10, 1.0, 0, "POST", "/api/checkout"),
        rule("api-b", 30, 0.0, 1, "*", "/api/*"),
        rule("api-a", 30, 0.0, 1, "*", "/api/*"),
        invalid_version,
        arn,
        attrs,
    ])
}

fn req<'a>(method: &'a str, path: &'a str) -> SamplingRequest<'a> {
    SamplingRequest {
        method: Some(method),
        url_path: Some(path),
        host: Some("shop.example.com"),
        service_name: Some("shop"),
        ..Default::default()
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sampler(addr: &DaemonAddress, clock: &Arc<ManualClock>) -> CentralizedSampler {
    let s = CentralizedSampler::builder(addr)
        .rules_interval(Duration::from_millis(200))
        .targets_interval(Duration::from_millis(100))
        .request_timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .seed(9)
        .build();
    // Started now rather than by the first decision: the tests wait for the rules first.
    s.start_polling();
    s
}

fn daemon(rules: String, targets: &[String]) -> (FakeDaemon, Shared) {
    let state: Shared = Arc::new(Mutex::new(Daemon {
        rules_answer: rules,
        targets_answers: targets.to_vec(),
        ..Default::default()
    }));
    (FakeDaemon::start(Arc::clone(&state)), state)
}

fn no_targets() -> String {
    json!({ "SamplingTargetDocuments": [], "LastRuleModification": 1.0, "UnprocessedStatistics": [] })
        .to_string()
}

#[test]
fn rules_are_fetched_filtered_and_ordered() {
    let (d, state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = sampler(&d.address(), &clock);
    wait_until("rules", || !s.rule_names().is_empty());
    let names: Vec<String> = s.rule_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["checkout", "health", "api-a", "api-b", "Default"]);
    assert!(!s.is_using_fallback());
    {
        let d = state.lock().expect("lock");
        let (ct, body) = &d.rules_calls[0];
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(body, "{}");
    }
    for _ in 0..100 {
        let c = s.should_sample(&req("POST", "/api/checkout"));
        assert!(c.sampled);
        assert_eq!(c.rule_name.as_deref(), Some("checkout"));
        let h = s.should_sample(&req("GET", "/health"));
        assert!(!h.sampled);
        assert_eq!(h.rule_name.as_deref(), Some("health"));
        let other = s.should_sample(&req("GET", "/"));
        assert!(!other.sampled);
        assert_eq!(other.rule_name.as_deref(), Some("Default"));
    }
    // Priority ties are broken by name: api-a before api-b.
    assert_eq!(
        s.should_sample(&req("GET", "/api/x")).rule_name.as_deref(),
        Some("api-a")
    );
}

/// As in the official SDKs, a sampler that has made no decision has not called the daemon:
/// the first decision starts the poller.
#[test]
fn the_poller_starts_with_the_first_decision() {
    let (d, state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_millis(50))
        .targets_interval(Duration::from_millis(50))
        .clock(clock.clone())
        .seed(3)
        .build();
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.rule_names().is_empty());
    {
        let d = state.lock().expect("lock");
        assert!(
            d.rules_calls.is_empty(),
            "rules fetched before any decision"
        );
        assert!(
            d.targets_calls.is_empty(),
            "targets asked before any decision"
        );
    }
    // The first decision comes from the fallback rules and starts the poller.
    let first = s.should_sample(&req("POST", "/api/checkout"));
    assert_eq!(first.rule_name, None);
    wait_until("rules", || !s.rule_names().is_empty());
    assert_eq!(
        s.should_sample(&req("POST", "/api/checkout"))
            .rule_name
            .as_deref(),
        Some("checkout")
    );
}

#[test]
fn statistics_and_borrowing() {
    let (d, state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_millis(200))
        .targets_interval(Duration::from_secs(3600))
        .clock(clock.clone())
        .seed(1)
        .client_id("0123456789abcdef01234567")
        .build();
    s.start_polling();
    wait_until("rules", || !s.rule_names().is_empty());
    // api-a: no quota yet, reservoir size 1, rate 0: one borrowed request per second.
    let mut sampled = 0;
    for _ in 0..3 {
        sampled += (0..10)
            .filter(|_| s.should_sample(&req("GET", "/api/a")).sampled)
            .count();
        clock.advance(1);
    }
    assert_eq!(sampled, 3);
    for _ in 0..7 {
        assert!(s.should_sample(&req("POST", "/api/checkout")).sampled);
    }
    drop(s);
    // A sampler with a target poller reports what it saw (first report after 1 s, so the
    // decisions below all land in it).
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_secs(3600))
        .targets_interval(Duration::from_secs(1))
        .clock(clock.clone())
        .build();
    s.start_polling();
    wait_until("rules", || !s.rule_names().is_empty());
    for _ in 0..10 {
        s.should_sample(&req("GET", "/api/a"));
    }
    for _ in 0..4 {
        s.should_sample(&req("POST", "/api/checkout"));
    }
    wait_until("statistics", || {
        !state.lock().expect("lock").targets_calls.is_empty()
    });
    let call = state.lock().expect("lock").targets_calls[0].clone();
    let docs = call["SamplingStatisticsDocuments"]
        .as_array()
        .expect("documents");
    assert_eq!(docs.len(), 2, "{call}");
    let by_name = |n: &str| {
        docs.iter()
            .find(|d| d["RuleName"] == n)
            .unwrap_or_else(|| panic!("{n} in {call}"))
            .clone()
    };
    let a = by_name("api-a");
    assert_eq!(a["RequestCount"], 10);
    assert_eq!(a["SampledCount"], 0);
    assert_eq!(a["BorrowCount"], 1);
    let c = by_name("checkout");
    assert_eq!(c["RequestCount"], 4);
    assert_eq!(c["SampledCount"], 4);
    assert_eq!(c["BorrowCount"], 0);
    // Integer epoch seconds, a 24-hex client ID.
    assert!(a["Timestamp"].is_u64(), "{a}");
    assert_eq!(a["Timestamp"].as_u64(), Some(clock_now(&clock)));
    let id = a["ClientID"].as_str().expect("ClientID");
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(c["ClientID"], a["ClientID"]);
    // Rules without traffic are not reported.
    assert!(docs.iter().all(|d| d["RuleName"] != "health"));
}

fn clock_now(clock: &ManualClock) -> u64 {
    xray_sdk::clock::Clock::epoch_seconds(clock)
}

#[test]
fn quotas_apply_and_expire() {
    let target = json!({
        "SamplingTargetDocuments": [{
            "RuleName": "api-a", "FixedRate": 0.0, "ReservoirQuota": 3,
            "ReservoirQuotaTTL": (T0 + 10) as f64, "Interval": 1
        }],
        "LastRuleModification": 1.0,
        "UnprocessedStatistics": []
    })
    .to_string();
    let (d, _state) = daemon(standard_rules(), &[target]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = sampler(&d.address(), &clock);
    wait_until("rules", || !s.rule_names().is_empty());
    // Before any target: borrowing, one per second.
    assert_eq!(
        (0..5)
            .filter(|_| s.should_sample(&req("GET", "/api/q")).sampled)
            .count(),
        1
    );
    // The traffic gets reported; the answer grants a quota of 3 per second until T0 + 10.
    wait_until("quota", || {
        clock.advance(1);
        if clock_now(&clock) > T0 + 8 {
            clock.set(T0 + 1);
        }
        (0..5)
            .filter(|_| s.should_sample(&req("GET", "/api/q")).sampled)
            .count()
            == 3
    });
    // Past the TTL: back to borrowing one per second.
    clock.set(T0 + 11);
    assert_eq!(
        (0..5)
            .filter(|_| s.should_sample(&req("GET", "/api/q")).sampled)
            .count(),
        1
    );
}

#[test]
fn statistics_are_sent_in_batches_of_25() {
    let rules: Vec<Value> = (0..30)
        .map(|i| rule(&format!("r{i:02}"), i, 0.0, 0, "GET", &format!("/p{i}")))
        .collect();
    let (d, state) = daemon(rules_answer(rules), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_secs(3600))
        .targets_interval(Duration::from_secs(1))
        .clock(clock.clone())
        .build();
    s.start_polling();
    wait_until("rules", || s.rule_names().len() == 30);
    for i in 0..30 {
        s.should_sample(&req("GET", &format!("/p{i}")));
    }
    wait_until("two calls", || {
        state.lock().expect("lock").targets_calls.len() >= 2
    });
    let d = state.lock().expect("lock");
    let sizes: Vec<usize> = d.targets_calls[..2]
        .iter()
        .map(|c| {
            c["SamplingStatisticsDocuments"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [25, 5]);
}

#[test]
fn falls_back_when_the_daemon_stops_and_recovers_when_it_returns() {
    let (d, state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_millis(200))
        .targets_interval(Duration::from_millis(100))
        .request_timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .fallback(LocalRules::new(0, 1.0))
        .build();
    s.start_polling();
    wait_until("rules", || !s.rule_names().is_empty());
    assert!(!s.should_sample(&req("GET", "/")).sampled);
    let addr = d.stop();
    // Rules stay in force for an hour after the last refresh...
    clock.advance(3599);
    assert_eq!(
        s.should_sample(&req("GET", "/")).rule_name.as_deref(),
        Some("Default")
    );
    // ...then the local rules take over (here: sample everything, no rule name).
    clock.advance(2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.is_using_fallback());
    let d = s.should_sample(&req("GET", "/"));
    assert!(d.sampled);
    assert_eq!(d.rule_name, None);
    // The daemon comes back on the same address: the rules return.
    let _d = FakeDaemon::start_on(addr, state);
    wait_until("recovery", || !s.is_using_fallback());
    assert_eq!(
        s.should_sample(&req("GET", "/")).rule_name.as_deref(),
        Some("Default")
    );
}

#[test]
fn counts_the_daemon_never_received_are_reported_when_it_returns() {
    let (d, state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_secs(3600))
        .targets_interval(Duration::from_millis(100))
        .request_timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .build();
    s.start_polling();
    wait_until("rules", || !s.rule_names().is_empty());
    let addr = d.stop();
    let reports_before = state.lock().expect("lock").targets_calls.len();
    for _ in 0..4 {
        s.should_sample(&req("GET", "/"));
    }
    // A few report attempts fail to connect.
    std::thread::sleep(Duration::from_millis(400));
    let _d = FakeDaemon::start_on(addr, state.clone());
    wait_until("a report after the daemon returns", || {
        state.lock().expect("lock").targets_calls.len() > reports_before
    });
    let d = state.lock().expect("lock");
    let reported: u64 = d.targets_calls[reports_before..]
        .iter()
        .map(|c| {
            c["SamplingStatisticsDocuments"][0]["RequestCount"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(reported, 4);
}

#[test]
fn absent_daemon_means_local_rules() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead =
        DaemonAddress::parse(&listener.local_addr().expect("addr").to_string()).expect("address");
    drop(listener);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&dead)
        .rules_interval(Duration::from_millis(50))
        .clock(clock.clone())
        .fallback(LocalRules::new(2, 0.0))
        .build();
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.is_using_fallback());
    let sampled = (0..10)
        .filter(|_| s.should_sample(&req("GET", "/")).sampled)
        .count();
    assert_eq!(sampled, 2);
}

#[test]
fn garbage_and_partial_answers_are_ignored() {
    let valid = standard_rules();
    let partial = valid[..valid.len() / 2].to_owned();
    let (d, state) = daemon("this is not json".into(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = sampler(&d.address(), &clock);
    for answer in [
        "this is not json".to_owned(),
        partial,
        "{}".to_owned(),
        json!({"SamplingRuleRecords": "nope"}).to_string(),
    ] {
        let before = state.lock().expect("lock").rules_calls.len();
        state.lock().expect("lock").rules_answer = answer.clone();
        wait_until("two more polls", || {
            state.lock().expect("lock").rules_calls.len() >= before + 2
        });
        assert!(s.is_using_fallback(), "{answer}");
    }
    state.lock().expect("lock").rules_answer = valid;
    wait_until("valid rules", || !s.is_using_fallback());
    // A record with wrong types is skipped; the others still apply.
    let mut bad = rule("bad", 1, 0.5, 1, "*", "*");
    bad["SamplingRule"]["Priority"] = json!("high");
    state.lock().expect("lock").rules_answer =
        rules_answer(vec![bad, rule("Default", 10000, 0.0, 0, "*", "*")]);
    wait_until("only Default", || {
        s.rule_names()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            == ["Default"]
    });

    // Garbage from SamplingTargets: the daemon did receive the counts, so they are not sent
    // again (the service would count them twice).
    state.lock().expect("lock").targets_answers = vec!["{\"Sampling".into(), no_targets()];
    for _ in 0..6 {
        s.should_sample(&req("GET", "/"));
    }
    wait_until("a report", || {
        !state.lock().expect("lock").targets_calls.is_empty()
    });
    for _ in 0..3 {
        s.should_sample(&req("GET", "/"));
    }
    wait_until("two reports", || {
        state.lock().expect("lock").targets_calls.len() >= 2
    });
    let d = state.lock().expect("lock");
    let counts: Vec<u64> = d.targets_calls[..2]
        .iter()
        .map(|c| {
            c["SamplingStatisticsDocuments"][0]["RequestCount"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    // Nine requests in all, each reported once: the first report (answered with garbage)
    // took at least one, the second only what the first did not.
    assert!((1..=6).contains(&counts[0]), "{counts:?}");
    assert_eq!(counts[0] + counts[1], 9, "{counts:?}");
}

#[test]
fn rule_changes_trigger_an_out_of_band_refresh() {
    let modified = json!({
        "SamplingTargetDocuments": [],
        "LastRuleModification": (T0 + 5) as f64,
        "UnprocessedStatistics": []
    })
    .to_string();
    let (d, state) = daemon(standard_rules(), &[modified, no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = CentralizedSampler::builder(&d.address())
        .rules_interval(Duration::from_secs(3600))
        .targets_interval(Duration::from_millis(100))
        .clock(clock.clone())
        .build();
    s.start_polling();
    wait_until("rules", || !s.rule_names().is_empty());
    assert_eq!(state.lock().expect("lock").rules_calls.len(), 1);
    s.should_sample(&req("GET", "/"));
    wait_until("out-of-band refresh", || {
        state.lock().expect("lock").rules_calls.len() == 2
    });
    // The next report says nothing changed since: no further refresh.
    clock.advance(20);
    s.should_sample(&req("GET", "/"));
    wait_until("second report", || {
        state.lock().expect("lock").targets_calls.len() >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(state.lock().expect("lock").rules_calls.len(), 2);
}

#[test]
fn the_poller_thread_stops_with_the_sampler() {
    let (d, _state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = sampler(&d.address(), &clock);
    let alive = s.poller_liveness();
    wait_until("rules", || !s.rule_names().is_empty());
    assert!(alive.upgrade().is_some());
    drop(s);
    wait_until("thread exit", || alive.upgrade().is_none());
}

#[test]
fn a_recorder_shutdown_stops_the_poller_and_decisions_go_on() {
    let (d, _state) = daemon(standard_rules(), &[no_targets()]);
    let clock = Arc::new(ManualClock::new(T0));
    let s = Arc::new(sampler(&d.address(), &clock));
    let alive = s.poller_liveness();
    wait_until("rules", || !s.rule_names().is_empty());
    let recorder = Recorder::builder()
        .ignore_env()
        .daemon_address(d.addr.to_string())
        .sampler(Arc::clone(&s))
        .build()
        .expect("recorder");
    let report = recorder.shutdown_blocking(Duration::from_secs(2));
    assert!(report.is_complete(), "{report:?}");
    wait_until("poller stopped", || alive.upgrade().is_none());
    // The sampler still decides, from the rules it has, and is not started again.
    assert_eq!(
        s.should_sample(&req("POST", "/api/checkout"))
            .rule_name
            .as_deref(),
        Some("checkout")
    );
    assert!(alive.upgrade().is_none());
}

#[test]
fn recorder_uses_console_rules() {
    let (d, _state) = daemon(standard_rules(), &[no_targets()]);
    let recorder = Recorder::builder()
        .ignore_env()
        .daemon_address(d.addr.to_string())
        .build()
        .expect("recorder");
    wait_until("console rules", || {
        recorder
            .should_sample(&req("POST", "/api/checkout"))
            .rule_name
            .as_deref()
            == Some("checkout")
    });
    let segment = recorder
        .segment("shop")
        .sampling_request(req("POST", "/api/checkout"))
        .begin();
    assert!(segment.is_sampled());
    let health = recorder
        .segment("shop")
        .sampling_request(req("GET", "/health"))
        .begin();
    assert!(!health.is_sampled());
}
