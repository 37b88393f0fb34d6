//! The whole reference architecture on loopback, as the demo runs it: xray-local (in process,
//! ephemeral ports, the demo's centralized rules), moto as DynamoDB (from
//! `scripts/with-moto.sh`, which exports `XRAY_TEST_DYNAMODB_ENDPOINT`), and the BFF and both
//! backends on `127.0.0.1:0`, each with its own recorder, its local rules file and the same
//! layer, middleware and interceptor as the binaries. Then requests, and assertions on what
//! the collector received, read through its JSON API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use xray_demo::config::{BackendConfig, BffConfig, Common, Role};

const REQUESTS: usize = 8;
const HEALTH_REQUESTS: usize = 5;

fn config_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/reference/config")
        .join(name)
}

/// The moto endpoint, or `None` (skip) outside CI.
fn dynamodb_endpoint() -> Option<String> {
    match std::env::var("XRAY_TEST_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ if std::env::var_os("CI").is_some() => panic!(
            "XRAY_TEST_DYNAMODB_ENDPOINT is not set and CI is: run this test through scripts/with-moto.sh (scripts/with-moto.sh cargo test -p xray-e2e)"
        ),
        _ => {
            // Straight to the process's stderr, so the test harness does not capture it.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED reference_architecture_is_traced_end_to_end: XRAY_TEST_DYNAMODB_ENDPOINT is not set. Run `scripts/with-moto.sh cargo test -p xray-e2e` to start moto and run the end-to-end test."
            );
            None
        }
    }
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(app: axum::Router, recorder: xray_sdk::Recorder) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(xray_demo::serve(listener, app, recorder, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

fn common(role: Role, daemon: &str) -> Common {
    let mut c = Common::local(role);
    c.daemon_address = daemon.to_string();
    c.sampling_rules = Some(config_file("sampling-rules.json"));
    c
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let r = client.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

/// Every entity (segment or subsegment) of a trace by id, with the id of its parent: the
/// enclosing entity for nested subsegments, `parent_id` for segments and streamed subsegments.
struct Entities {
    by_id: HashMap<String, Map<String, Value>>,
    parent: HashMap<String, String>,
}

impl Entities {
    fn of(trace: &Value) -> Self {
        let mut e = Entities {
            by_id: HashMap::new(),
            parent: HashMap::new(),
        };
        for seg in trace["Segments"].as_array().unwrap() {
            let doc: Value = serde_json::from_str(seg["Document"].as_str().unwrap()).unwrap();
            e.add(doc.as_object().unwrap(), None);
        }
        e
    }

    fn add(&mut self, entity: &Map<String, Value>, enclosing: Option<&str>) {
        let id = entity["id"].as_str().unwrap().to_string();
        let parent = enclosing.map(str::to_string).or_else(|| {
            entity
                .get("parent_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(p) = parent {
            self.parent.insert(id.clone(), p);
        }
        for sub in entity
            .get("subsegments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.add(sub.as_object().unwrap(), Some(&id));
        }
        // A complete copy wins over an in-progress one.
        let done = entity.contains_key("end_time");
        if done || !self.by_id.contains_key(&id) {
            self.by_id.insert(id, entity.clone());
        }
    }

    fn segment(&self, name: &str) -> Option<(&String, &Map<String, Value>)> {
        self.by_id.iter().find(|(_, e)| {
            e.get("name").and_then(Value::as_str) == Some(name)
                && e.get("type").and_then(Value::as_str) != Some("subsegment")
                && e.contains_key("trace_id")
        })
    }

    /// Descendants of `id` (through `parent`).
    fn descendants(&self, id: &str) -> Vec<(&String, &Map<String, Value>)> {
        self.by_id
            .iter()
            .filter(|(d, _)| {
                let mut cur = self.parent.get(*d);
                let mut hops = 0;
                while let Some(p) = cur {
                    if p == id {
                        return true;
                    }
                    hops += 1;
                    if hops > 64 {
                        break;
                    }
                    cur = self.parent.get(p);
                }
                false
            })
            .collect()
    }

    fn complete(&self) -> bool {
        ["xray-demo-bff", "xray-demo-backend1", "xray-demo-backend2"]
            .iter()
            .all(|n| {
                self.segment(n)
                    .is_some_and(|(_, s)| s.contains_key("end_time"))
            })
    }
}

fn str_at(v: &Map<String, Value>, pointer: &str) -> String {
    Value::Object(v.clone())
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_architecture_is_traced_end_to_end() {
    let Some(endpoint) = dynamodb_endpoint() else {
        return;
    };
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // The collector, with the demo's centralized rules (GET /health never sampled).
    let mut config = xray_local::Config::ephemeral();
    config.rules = Some(config_file("xray-local-rules.json"));
    config.settle = Duration::from_secs(1);
    let xray = xray_local::Server::start(config).await.unwrap();
    let daemon = format!("udp:{} tcp:{}", xray.udp_addr(), xray.tcp_addr());
    let ui = format!("http://{}", xray.ui_addr());

    // A table of our own, so reruns against one moto do not see each other's items.
    let table = format!("xray-e2e-{}-{}", std::process::id(), started);
    let dynamo = xray_demo::dynamo::admin_client(
        &xray_demo::config::DynamoEndpoint::Local(endpoint.clone()),
        "us-east-1",
    )
    .await;
    xray_demo::dynamo::ensure_table(&dynamo, &table)
        .await
        .unwrap();

    // The backends, then the BFF pointing at them.
    let mut running = Vec::new();
    let mut recorders = Vec::new();
    let mut backend_urls = Vec::new();
    for role in [Role::Backend1, Role::Backend2] {
        let mut cfg = BackendConfig::local(role, &endpoint);
        cfg.common = common(role, &daemon);
        cfg.table_name = table.clone();
        let recorder = cfg.common.recorder().unwrap();
        let app = xray_demo::backend::router(&cfg, recorder.clone()).await;
        let r = start(app, recorder.clone()).await;
        backend_urls.push(format!("http://{}", r.addr));
        recorders.push(recorder);
        running.push(r);
    }
    let bff_cfg = BffConfig {
        common: common(Role::Bff, &daemon),
        backend1_url: backend_urls[0].clone(),
        backend2_url: backend_urls[1].clone(),
    };
    let bff_recorder = bff_cfg.common.recorder().unwrap();
    let bff_app = xray_demo::bff::router(&bff_cfg, bff_recorder.clone()).unwrap();
    let bff = start(bff_app, bff_recorder.clone()).await;
    recorders.push(bff_recorder);
    let bff_url = format!("http://{}", bff.addr);
    running.push(bff);

    // Traffic: /api/now without a trace header (the sampling rules decide), and /health.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let page = client.get(format!("{bff_url}/")).send().await.unwrap();
    assert!(page.status().is_success());
    assert!(page.text().await.unwrap().contains("api/now"));
    let mut trace_ids = Vec::new();
    for _ in 0..REQUESTS {
        let body = get_json(&client, &format!("{bff_url}/api/now")).await;
        assert!(
            body["date"].as_str().is_some_and(|d| d.len() == 10),
            "{body}"
        );
        assert!(
            body["time"].as_str().is_some_and(|t| t.len() == 8),
            "{body}"
        );
        let id = body["trace_id"]
            .as_str()
            .expect("trace_id in the answer")
            .to_string();
        trace_ids.push(id);
    }
    for _ in 0..HEALTH_REQUESTS {
        let r = client
            .get(format!("{bff_url}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let distinct: HashSet<_> = trace_ids.iter().collect();
    assert_eq!(
        distinct.len(),
        REQUESTS,
        "one trace per request: {trace_ids:?}"
    );
    for r in &recorders {
        let r = r.clone();
        tokio::task::spawn_blocking(move || r.flush(Duration::from_secs(5)))
            .await
            .unwrap()
            .unwrap();
    }

    // Wait (bounded) until every trace has its three segments, complete.
    let ids = trace_ids.join(",");
    let deadline = Instant::now() + Duration::from_secs(20);
    let traces = loop {
        let v = get_json(&client, &format!("{ui}/api/Traces?ids={ids}")).await;
        let traces = v["Traces"].as_array().cloned().unwrap_or_default();
        if traces.len() == REQUESTS && traces.iter().all(|t| Entities::of(t).complete()) {
            break traces;
        }
        assert!(
            Instant::now() < deadline,
            "the collector did not receive every trace in time: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    for trace in &traces {
        let e = Entities::of(trace);
        let tid = trace["Id"].as_str().unwrap();
        // BFF: the root of the trace, the request as the client made it.
        let (bff_id, bff_seg) = e.segment("xray-demo-bff").unwrap();
        assert!(
            !bff_seg.contains_key("parent_id"),
            "BFF segment has a parent: {bff_seg:?}"
        );
        assert!(str_at(bff_seg, "/http/request/url").ends_with("/api/now"));
        assert_eq!(bff_seg["http"]["response"]["status"], 200);
        assert_eq!(bff_seg["annotations"]["backends_called"], 2);

        // Two remote subsegments, one per backend, each the parent of that backend's segment.
        let remote: Vec<_> = e
            .descendants(bff_id)
            .into_iter()
            .filter(|(_, s)| s.get("namespace").and_then(Value::as_str) == Some("remote"))
            .collect();
        assert_eq!(
            remote.len(),
            2,
            "trace {tid}: remote subsegments {remote:?}"
        );
        for (role, path, step, key) in [
            ("backend1", "/api/date", "compute-date", "date"),
            ("backend2", "/api/time", "compute-time", "time"),
        ] {
            let (call_id, call) = remote
                .iter()
                .find(|(_, s)| str_at(s, "/http/request/url").ends_with(path))
                .unwrap_or_else(|| panic!("trace {tid}: no remote call to {path}"));
            assert_eq!(call["http"]["response"]["status"], 200);
            let name = format!("xray-demo-{role}");
            let (seg_id, seg) = e.segment(&name).unwrap();
            assert_eq!(
                seg.get("parent_id").and_then(Value::as_str),
                Some(call_id.as_str()),
                "trace {tid}: {name} is not linked to the BFF's call"
            );
            assert_eq!(seg["annotations"]["backend"], role);
            assert_eq!(seg["annotations"]["item_sub_app_id"], role);
            assert!(seg["annotations"][key].is_string());
            let below = e.descendants(seg_id);
            // The custom subsegment, with its metadata.
            let (_, compute) = below
                .iter()
                .find(|(_, s)| s["name"] == step)
                .unwrap_or_else(|| panic!("trace {tid}: no {step} subsegment"));
            assert!(
                compute["metadata"]["default"]["result"].is_string(),
                "{compute:?}"
            );
            // The DynamoDB call.
            let (_, put) = below
                .iter()
                .find(|(_, s)| s["name"] == "DynamoDB")
                .unwrap_or_else(|| panic!("trace {tid}: no DynamoDB subsegment under {name}"));
            assert_eq!(put["namespace"], "aws");
            assert_eq!(put["aws"]["operation"], "PutItem");
            assert_eq!(put["aws"]["table_name"], table.as_str());
            assert!(put.get("fault").is_none(), "{put:?}");
        }
    }

    // One trace per request, and none for /health (excluded by the sampling rule).
    let summaries = get_json(&client, &format!("{ui}/api/TraceSummaries?limit=1000")).await;
    let list = summaries["TraceSummaries"].as_array().unwrap();
    let health: Vec<_> = list
        .iter()
        .filter(|s| {
            s.pointer("/Http/HttpURL")
                .and_then(Value::as_str)
                .is_some_and(|u| u.ends_with("/health"))
        })
        .collect();
    assert!(health.is_empty(), "/health was sampled: {health:?}");
    let api: HashSet<&str> = list
        .iter()
        .filter(|s| {
            s.pointer("/Http/HttpURL")
                .and_then(Value::as_str)
                .is_some_and(|u| u.ends_with("/api/now"))
        })
        .filter_map(|s| s["Id"].as_str())
        .collect();
    assert_eq!(
        api,
        trace_ids.iter().map(String::as_str).collect::<HashSet<_>>()
    );

    // The service map: client -> bff -> backend1, backend2 -> DynamoDB.
    let graph = get_json(&client, &format!("{ui}/api/ServiceGraph")).await;
    let services = graph["Services"].as_array().unwrap();
    let by_ref: HashMap<u64, &Value> = services
        .iter()
        .map(|s| (s["ReferenceId"].as_u64().unwrap(), s))
        .collect();
    let mut edges = HashSet::new();
    for s in services {
        for edge in s["Edges"].as_array().into_iter().flatten() {
            let to = by_ref[&edge["ReferenceId"].as_u64().unwrap()];
            let label = |n: &Value| {
                if n["Type"] == "client" {
                    "client".to_string()
                } else {
                    n["Name"].as_str().unwrap_or("?").to_string()
                }
            };
            edges.insert((
                label(s),
                label(to),
                to["Type"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    let has = |from: &str, to: &str| edges.iter().any(|(f, t, _)| f == from && t == to);
    assert!(has("client", "xray-demo-bff"), "{edges:?}");
    assert!(has("xray-demo-bff", "xray-demo-backend1"), "{edges:?}");
    assert!(has("xray-demo-bff", "xray-demo-backend2"), "{edges:?}");
    for backend in ["xray-demo-backend1", "xray-demo-backend2"] {
        assert!(
            edges
                .iter()
                .any(|(f, _, kind)| f == backend && kind == "AWS::DynamoDB::Table"),
            "no edge {backend} -> DynamoDB: {edges:?}"
        );
    }

    // The items are really in the table.
    for sub_app_id in ["backend1", "backend2"] {
        let last = xray_demo::dynamo::last_accessed(&dynamo, &table, sub_app_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no item {sub_app_id} in {table}"));
        assert!(
            last >= started,
            "{sub_app_id}: LastAccessed {last} < {started}"
        );
    }

    for r in running {
        let _ = r.stop.send(());
        let _ = r.task.await;
    }
    xray.shutdown().await;
}
