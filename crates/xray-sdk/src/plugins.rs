//! Environment plugins: ECS, EC2 and EKS metadata for the segment's `aws` block and `origin`.
//!
//! Detection runs once, as a job on the SDK's background thread (`xray-background`, shared
//! with the sampling poller), with blocking calls of 1 s timeouts; segments sent before it
//! finishes simply go without the block. A missing endpoint is not an error. The emitter adds
//! the result to every segment at serialization time, so the request path never pays for it.
//!
//! | plugin | enabled when | `aws` key | `origin` |
//! |---|---|---|---|
//! | ECS | `ECS_CONTAINER_METADATA_URI_V4` (or `_URI`) is an `http://` URL | `ecs` | `AWS::ECS::Container` |
//! | EKS | the Kubernetes service-account token file exists | `eks` | `AWS::EKS::Container` |
//! | EC2 | turned on in code (it probes the instance metadata service) | `ec2` | `AWS::EC2::Instance` |

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::background::{self, Job};
use crate::http::{Client, Method};

const K8S_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const DEFAULT_IMDS: &str = "http://169.254.169.254";
const TIMEOUT: Duration = Duration::from_millis(1000);

/// Which plugins run. The default enables ECS and EKS (each only where its environment is
/// detected) and leaves EC2 off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugins {
    ecs: bool,
    ec2: bool,
    eks: bool,
    ecs_metadata_uri: Option<String>,
    imds_endpoint: Option<String>,
    k8s_token_path: String,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            ecs: true,
            ec2: false,
            eks: true,
            ecs_metadata_uri: None,
            imds_endpoint: None,
            k8s_token_path: K8S_TOKEN.to_owned(),
        }
    }
}

impl Plugins {
    /// No plugins.
    pub fn none() -> Self {
        Plugins {
            ecs: false,
            ec2: false,
            eks: false,
            ..Plugins::default()
        }
    }

    /// ECS, EKS and EC2.
    pub fn all() -> Self {
        Plugins {
            ec2: true,
            ..Plugins::default()
        }
    }

    /// Turns the ECS plugin on or off.
    pub fn ecs(mut self, on: bool) -> Self {
        self.ecs = on;
        self
    }

    /// Turns the EC2 plugin on or off.
    pub fn ec2(mut self, on: bool) -> Self {
        self.ec2 = on;
        self
    }

    /// Turns the EKS plugin on or off.
    pub fn eks(mut self, on: bool) -> Self {
        self.eks = on;
        self
    }

    /// The ECS task metadata URI (default: `ECS_CONTAINER_METADATA_URI_V4`, then
    /// `ECS_CONTAINER_METADATA_URI`).
    pub fn ecs_metadata_uri(mut self, uri: impl Into<String>) -> Self {
        self.ecs_metadata_uri = Some(uri.into());
        self
    }

    /// The EC2 instance metadata endpoint (default: `IMDS_ENDPOINT`, then
    /// `http://169.254.169.254`).
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// Where the Kubernetes service-account token is looked for (EKS detection).
    pub fn k8s_token_path(mut self, path: impl Into<String>) -> Self {
        self.k8s_token_path = path.into();
        self
    }

    fn any(&self) -> bool {
        self.ecs || self.ec2 || self.eks
    }
}

/// What the plugins found.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ResourceData {
    /// The segment `origin`, the most specific environment found.
    pub origin: Option<&'static str>,
    /// `aws.ecs`.
    pub ecs: Option<Value>,
    /// `aws.ec2`.
    pub ec2: Option<Value>,
    /// `aws.eks`.
    pub eks: Option<Value>,
    /// `aws.account_id`.
    pub account_id: Option<String>,
    /// `aws.cloudwatch_logs`: the log groups the service writes to (`[{log_group, arn}]`).
    pub cloudwatch_logs: Option<Value>,
}

/// Shared, filled once by the detection thread.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    data: OnceLock<ResourceData>,
}

impl Resources {
    pub(crate) fn get(&self) -> Option<&ResourceData> {
        self.data.get()
    }

    pub(crate) fn set(&self, data: ResourceData) {
        let _ = self.data.set(data);
    }
}

/// Runs the plugins once on the background thread and stores what they find in `into`.
/// The job holds `into` weakly: a recorder dropped before it runs costs no look-ups.
pub(crate) fn detect_in_background(plugins: Plugins, into: Arc<Resources>) {
    if !plugins.any() {
        return;
    }
    let job = Detection {
        plugins,
        into: Arc::downgrade(&into),
    };
    match background::schedule(Box::new(job), Instant::now()) {
        Ok(handle) => handle.detach(),
        Err(e) => {
            tracing::debug!(error = %e, "X-Ray plugins: could not start the background thread")
        }
    }
}

struct Detection {
    plugins: Plugins,
    into: Weak<Resources>,
}

impl Job for Detection {
    fn run(&mut self) -> Option<Instant> {
        if self.into.strong_count() > 0 {
            let data = detect(&self.plugins);
            if let Some(into) = self.into.upgrade() {
                into.set(data);
            }
        }
        None
    }
}

/// Runs the enabled plugins and merges what they find. Blocks for the metadata calls (each
/// step of each call times out after 1 s): call it off async runtimes' worker threads.
pub fn detect(plugins: &Plugins) -> ResourceData {
    let mut data = ResourceData::default();
    let client = Client::new(TIMEOUT);
    if plugins.ec2 {
        let endpoint = plugins
            .imds_endpoint
            .clone()
            .or_else(|| std::env::var("IMDS_ENDPOINT").ok())
            .unwrap_or_else(|| DEFAULT_IMDS.to_owned());
        if let Some((ec2, account)) = ec2(&client, endpoint.trim_end_matches('/')) {
            data.ec2 = Some(ec2);
            data.account_id = account;
            data.origin = Some("AWS::EC2::Instance");
        }
    }
    if plugins.ecs {
        let uri = plugins.ecs_metadata_uri.clone().or_else(|| {
            std::env::var("ECS_CONTAINER_METADATA_URI_V4")
                .or_else(|_| std::env::var("ECS_CONTAINER_METADATA_URI"))
                .ok()
        });
        if let Some(uri) = uri.filter(|u| u.starts_with("http://")) {
            let (block, logs) = ecs(&client, uri.trim_end_matches('/'));
            data.ecs = Some(block);
            data.cloudwatch_logs = logs;
            data.origin = Some("AWS::ECS::Container");
        }
    }
    if plugins.eks && std::path::Path::new(&plugins.k8s_token_path).exists() {
        let mut eks = Map::new();
        if let Some(h) = hostname() {
            eks.insert("pod".into(), h.into());
        }
        if let Some(id) = container_id() {
            eks.insert("container_id".into(), id.into());
        }
        if let Ok(cluster) = std::env::var("EKS_CLUSTER_NAME") {
            eks.insert("cluster_name".into(), cluster.into());
        }
        data.eks = Some(Value::Object(eks));
        data.origin = Some("AWS::EKS::Container");
    }
    data
}

fn get_json(client: &Client, url: &str, token: Option<&str>) -> Option<Value> {
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("X-aws-ec2-metadata-token", t));
    }
    let body = client.call(Method::Get, url, &headers, &[]).ok()?;
    serde_json::from_slice(&body).ok()
}

fn ec2(client: &Client, endpoint: &str) -> Option<(Value, Option<String>)> {
    // IMDSv2 first; fall back to IMDSv1 when the token call fails.
    let token = client
        .call(
            Method::Put,
            &format!("{endpoint}/latest/api/token"),
            &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            &[],
        )
        .ok()
        .and_then(|body| String::from_utf8(body).ok());
    let doc = get_json(
        client,
        &format!("{endpoint}/latest/dynamic/instance-identity/document"),
        token.as_deref(),
    )?;
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut ec2 = Map::new();
    for (key, src) in [
        ("instance_id", "instanceId"),
        ("availability_zone", "availabilityZone"),
        ("instance_size", "instanceType"),
        ("ami_id", "imageId"),
    ] {
        if let Some(v) = field(src) {
            ec2.insert(key.into(), v.into());
        }
    }
    if ec2.is_empty() {
        return None;
    }
    Some((Value::Object(ec2), field("accountId")))
}

/// The `aws.ecs` block and, when the container logs to CloudWatch, `aws.cloudwatch_logs`.
fn ecs(client: &Client, uri: &str) -> (Value, Option<Value>) {
    let mut ecs = Map::new();
    let mut logs = None;
    // `container` is the hostname, as in every official SDK (the container's name only when
    // there is no hostname).
    if let Some(h) = hostname() {
        ecs.insert("container".into(), h.into());
    }
    if let Some(c) = get_json(client, uri, None) {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(name) = s(&c, "Name") {
            ecs.entry("container").or_insert_with(|| name.into());
        }
        if let Some(id) = s(&c, "DockerId") {
            ecs.insert("container_id".into(), id.into());
        }
        if let Some(arn) = s(&c, "ContainerARN") {
            ecs.insert("container_arn".into(), arn.into());
        }
        if let Some(labels) = c.get("Labels") {
            if let Some(cluster) = s(labels, "com.amazonaws.ecs.cluster") {
                ecs.insert("cluster_arn".into(), cluster.into());
            }
            if let Some(task) = s(labels, "com.amazonaws.ecs.task-arn") {
                ecs.insert("task_arn".into(), task.into());
            }
            if let Some(family) = s(labels, "com.amazonaws.ecs.task-definition-family") {
                ecs.insert("task_family".into(), family.into());
            }
        }
        if let Some(opts) = c.get("LogOptions")
            && let Some(group) = s(opts, "awslogs-group")
        {
            // As the Java SDK does: the group, and its ARN from the region of the log
            // options and the account of the container's ARN.
            let account = s(&c, "ContainerARN")
                .and_then(|arn| arn.split(':').nth(4).map(str::to_owned))
                .filter(|a| !a.is_empty());
            let mut entry = Map::new();
            if let (Some(region), Some(account)) = (s(opts, "awslogs-region"), account) {
                entry.insert(
                    "arn".into(),
                    format!("arn:aws:logs:{region}:{account}:log-group:{group}").into(),
                );
            }
            entry.insert("log_group".into(), group.into());
            logs = Some(Value::Array(vec![Value::Object(entry)]));
        }
    }
    if let Some(task) = get_json(client, &format!("{uri}/task"), None) {
        if let Some(lt) = task.get("LaunchType").and_then(Value::as_str) {
            ecs.insert("launch_type".into(), lt.to_ascii_lowercase().into());
        }
        if let Some(az) = task.get("AvailabilityZone").and_then(Value::as_str) {
            ecs.insert("availability_zone".into(), az.into());
        }
        if !ecs.contains_key("cluster_arn")
            && let Some(cluster) = task.get("Cluster").and_then(Value::as_str)
        {
            ecs.insert("cluster_arn".into(), cluster.into());
        }
    }
    (Value::Object(ecs), logs)
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The container ID: the last 64 characters of the first `/proc/self/cgroup` line longer
/// than 64 characters (how the Java SDK finds it).
fn container_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| l.len() > 64)
        .and_then(|l| l.get(l.len() - 64..))
        .map(str::to_owned)
}
