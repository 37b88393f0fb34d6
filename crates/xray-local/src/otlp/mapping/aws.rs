//! The `aws` block (the call's fields from the span, the platform's from the
//! resource), `origin` and `service`.

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{Map, Value as Json, json};

use super::attrs::Attrs;

/// What a resource says, read once for all its spans.
#[derive(Debug, Default)]
pub(crate) struct ResourceFacts<'a> {
    pub(crate) attrs: Attrs<'a>,
    /// `service.name`.
    pub(crate) service_name: Option<&'a str>,
    /// `telemetry.sdk.language`: how exception stack traces are read.
    pub(crate) language: Option<&'a str>,
    /// The segment `origin`.
    pub(crate) origin: Option<&'static str>,
    /// `cloud.provider` is set and is not `aws`: no `aws` block at all.
    pub(crate) not_aws: bool,
    /// The platform members of the `aws` block.
    pub(crate) platform: Map<String, Json>,
    /// `cloud.account.id`.
    pub(crate) account_id: Option<&'a str>,
    /// The `service` block.
    pub(crate) service: Option<Json>,
}

impl<'a> ResourceFacts<'a> {
    pub(crate) fn new(list: &'a [KeyValue]) -> Self {
        let attrs = Attrs::new(list);
        let provider = attrs.str("cloud.provider");
        let not_aws = provider.is_some_and(|p| p != "aws");
        let platform = if not_aws {
            Map::new()
        } else {
            platform(&attrs)
        };
        Self {
            service_name: attrs.str("service.name"),
            language: attrs.str("telemetry.sdk.language"),
            origin: origin(&attrs),
            not_aws,
            platform,
            account_id: attrs.str("cloud.account.id"),
            service: attrs
                .first_str(&["service.version", "container.image.tag"])
                .map(|v| json!({ "version": v })),
            attrs,
        }
    }
}

/// `origin` from `cloud.platform` (and the ECS launch type); none outside
/// AWS or without a platform.
fn origin(attrs: &Attrs<'_>) -> Option<&'static str> {
    if attrs.is_empty() || attrs.str("cloud.provider").is_some_and(|p| p != "aws") {
        return None;
    }
    Some(match attrs.str("cloud.platform")? {
        "aws_ec2" => "AWS::EC2::Instance",
        "aws_ecs" => match attrs.str("aws.ecs.launchtype") {
            Some("ec2") => "AWS::ECS::EC2",
            Some("fargate") => "AWS::ECS::Fargate",
            _ => "AWS::ECS::Container",
        },
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_app_runner" => "AWS::AppRunner::Service",
        _ => return None,
    })
}

/// An object of the non-empty string members given, or `None` if none is.
fn object(members: &[(&str, Option<&str>)]) -> Option<Json> {
    let m: Map<String, Json> = members
        .iter()
        .filter_map(|(k, v)| Some(((*k).to_string(), Json::from((*v)?))))
        .collect();
    (!m.is_empty()).then_some(Json::Object(m))
}

/// The platform members of the `aws` block: `ec2`, `ecs`, `eks`,
/// `elastic_beanstalk`, `cloudwatch_logs` and `xray`.
fn platform(a: &Attrs<'_>) -> Map<String, Json> {
    let mut out = Map::new();
    let platform = a.str("cloud.platform");
    let zone = a.str("cloud.availability_zone");
    let host_id = a.str("host.id");
    if (platform == Some("aws_ec2") || host_id.is_some())
        && let Some(ec2) = object(&[
            ("instance_id", host_id),
            ("availability_zone", zone),
            ("instance_size", a.str("host.type")),
            ("ami_id", a.str("host.image.id")),
        ])
    {
        out.insert("ec2".into(), ec2);
    }
    if platform == Some("aws_ecs")
        && let Some(ecs) = object(&[
            ("container", a.str("container.name")),
            ("container_id", a.str("container.id")),
            ("availability_zone", zone),
            ("container_arn", a.str("aws.ecs.container.arn")),
            ("cluster_arn", a.str("aws.ecs.cluster.arn")),
            ("task_arn", a.str("aws.ecs.task.arn")),
            ("task_family", a.str("aws.ecs.task.family")),
            ("launch_type", a.str("aws.ecs.launchtype")),
        ])
    {
        out.insert("ecs".into(), ecs);
    }
    let cluster = a.str("k8s.cluster.name");
    if (platform == Some("aws_eks") || cluster.is_some())
        && let Some(eks) = object(&[
            ("cluster_name", cluster),
            ("pod", a.str("k8s.pod.name")),
            ("container_id", a.str("container.id")),
        ])
    {
        out.insert("eks".into(), eks);
    }
    if platform == Some("aws_elastic_beanstalk")
        && let Some(deploy) = a.str("service.instance.id")
    {
        let mut eb = Map::new();
        if let Some(env) = a.str("service.namespace") {
            eb.insert("environment_name".into(), env.into());
        }
        if let Some(v) = a.str("service.version") {
            eb.insert("version_label".into(), v.into());
        }
        eb.insert(
            "deployment_id".into(),
            deploy.parse::<i64>().unwrap_or(0).into(),
        );
        out.insert("elastic_beanstalk".into(), eb.into());
    }
    let logs = log_groups(a);
    if !logs.is_empty() {
        out.insert("cloudwatch_logs".into(), logs.into());
    }
    let sdk = match (a.str("telemetry.sdk.name"), a.str("telemetry.sdk.language")) {
        (Some(name), Some(lang)) => Some(format!("{name} for {lang}")),
        (name, _) => name.map(str::to_string),
    };
    let mut xray = Map::new();
    if let Some(sdk) = sdk {
        xray.insert("sdk".into(), sdk.into());
    }
    if let Some(v) = a.str("telemetry.sdk.version") {
        xray.insert("sdk_version".into(), v.into());
    }
    let auto =
        a.get("telemetry.auto.version").is_some() || a.get("telemetry.distro.version").is_some();
    xray.insert("auto_instrumentation".into(), auto.into());
    out.insert("xray".into(), xray.into());
    out
}

/// `aws.log.group.arns` (each with the group name taken from the ARN), else
/// `aws.log.group.names` (a list, or one string of names joined by `&`).
fn log_groups(a: &Attrs<'_>) -> Vec<Json> {
    if let Some(arns) = a.str_list("aws.log.group.arns").filter(|l| !l.is_empty()) {
        return arns
            .into_iter()
            .map(|arn| {
                let name = arn
                    .split_once(":log-group:")
                    .map(|(_, rest)| rest.split(':').next().unwrap_or(rest));
                match name {
                    Some(n) => json!({"log_group": n, "arn": arn}),
                    None => json!({"arn": arn}),
                }
            })
            .collect();
    }
    let names = a
        .str_list("aws.log.group.names")
        .or_else(|| a.str("aws.log.group.names").map(|s| s.split('&').collect()))
        .unwrap_or_default();
    names
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| json!({ "log_group": n }))
        .collect()
}

/// Span keys the `aws` block reads.
const CONSUMED: &[&str] = &[
    "aws.operation",
    "rpc.method",
    "aws.account_id",
    "aws.region",
    "aws.request_id",
    "aws.requestId",
    "messaging.url",
    "aws.queue_url",
    "aws.queue.url",
    "aws.dynamodb.table_names",
    "aws.table_name",
    "aws.table.name",
];

/// The `aws` block: the call's fields from the span's attributes, the
/// platform's from the resource. `None` outside AWS (`cloud.provider` set to
/// another cloud), and then the span's keys stay in the metadata.
pub(super) fn build<'a>(
    attrs: &Attrs<'a>,
    res: &ResourceFacts<'_>,
    consumed: &mut BTreeSet<&'a str>,
) -> Option<Map<String, Json>> {
    if res.not_aws {
        return None;
    }
    for (k, _) in attrs.iter() {
        if CONSUMED.contains(&k) {
            consumed.insert(k);
        }
    }
    let mut aws = res.platform.clone();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            aws.insert(k.into(), v.into());
        }
    };
    put("account_id", attrs.str("aws.account_id").or(res.account_id));
    put(
        "operation",
        attrs.first_str(&["aws.operation", "rpc.method"]),
    );
    // `cloud.region` on the span is read too: the OpenTelemetry conventions
    // for AWS calls name the region that way.
    put(
        "remote_region",
        attrs.first_str(&["aws.region", "cloud.region"]),
    );
    put(
        "request_id",
        attrs.first_str(&["aws.request_id", "aws.requestId"]),
    );
    put(
        "queue_url",
        attrs.first_str(&["messaging.url", "aws.queue_url", "aws.queue.url"]),
    );
    let tables = match attrs.str_list("aws.dynamodb.table_names") {
        Some(list) => list,
        None => attrs
            .str("aws.dynamodb.table_names")
            .or_else(|| attrs.first_str(&["aws.table_name", "aws.table.name"]))
            .into_iter()
            .collect(),
    };
    match tables.as_slice() {
        [] => {}
        [one] => put("table_name", Some(one)),
        many => {
            aws.insert("table_names".into(), json!(many));
        }
    }
    if attrs.str("aws.region").is_none() && attrs.str("cloud.region").is_some() {
        consumed.insert("cloud.region");
    }
    Some(aws)
}

/// Members of the `aws` block that describe the call rather than the
/// platform (left out of a local root's service segment).
pub(super) const CALL_MEMBERS: &[&str] = &[
    "operation",
    "remote_region",
    "request_id",
    "queue_url",
    "table_name",
    "table_names",
];
