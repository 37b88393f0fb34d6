//! ECS and EC2 plugins against real HTTP servers on loopback standing in for the metadata
//! endpoints. `detect` blocks, so it runs on a blocking thread while the runtime serves.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use serde_json::json;
use xray_sdk::plugins::{Plugins, ResourceData};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

async fn detect(plugins: &Plugins) -> ResourceData {
    let plugins = plugins.clone();
    tokio::task::spawn_blocking(move || xray_sdk::plugins::detect(&plugins))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_metadata_fills_the_ecs_block() {
    let app = Router::new()
        .route(
            "/v4/abc",
            get(|| async {
                axum::Json(json!({
                    "Name": "backend",
                    "DockerId": "d0c4e1d",
                    "ContainerARN": "arn:aws:ecs:us-east-1:123456789012:container/c1",
                    "Labels": {
                        "com.amazonaws.ecs.cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/demo",
                        "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/demo/t1",
                        "com.amazonaws.ecs.task-definition-family": "backend"
                    },
                    "LogOptions": {"awslogs-group": "/ecs/backend", "awslogs-region": "us-east-1"}
                }))
            }),
        )
        .route(
            "/v4/abc/task",
            get(|| async { axum::Json(json!({"LaunchType": "FARGATE", "AvailabilityZone": "us-east-1a"})) }),
        );
    let base = serve(app).await;
    let data = detect(
        &Plugins::none()
            .ecs(true)
            .ecs_metadata_uri(format!("{base}/v4/abc")),
    )
    .await;
    assert_eq!(data.origin, Some("AWS::ECS::Container"));
    let ecs = data.ecs.unwrap();
    // The hostname, as every official SDK records it (the container's name is not it).
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_default());
    assert!(!hostname.is_empty());
    assert_eq!(ecs["container"], hostname.as_str());
    assert_eq!(ecs["container_id"], "d0c4e1d");
    assert_eq!(
        ecs["container_arn"],
        "arn:aws:ecs:us-east-1:123456789012:container/c1"
    );
    assert_eq!(
        ecs["cluster_arn"],
        "arn:aws:ecs:us-east-1:123456789012:cluster/demo"
    );
    assert_eq!(ecs["launch_type"], "fargate");
    assert!(ecs.get("log_group").is_none());
    assert_eq!(
        data.cloudwatch_logs,
        Some(json!([{
            "log_group": "/ecs/backend",
            "arn": "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/backend"
        }]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_uses_imdsv2_token() {
    let app = Router::new()
        .route("/latest/api/token", put(|| async { "tok-123" }))
        .route(
            "/latest/dynamic/instance-identity/document",
            get(|headers: HeaderMap| async move {
                if headers
                    .get("x-aws-ec2-metadata-token")
                    .and_then(|v| v.to_str().ok())
                    != Some("tok-123")
                {
                    return Err(StatusCode::UNAUTHORIZED);
                }
                Ok(axum::Json(json!({
                    "instanceId": "i-0abc", "availabilityZone": "us-east-1b",
                    "instanceType": "t3.micro", "imageId": "ami-1", "accountId": "123456789012"
                })))
            }),
        );
    let base = serve(app).await;
    let data = detect(&Plugins::none().ec2(true).imds_endpoint(base)).await;
    assert_eq!(data.origin, Some("AWS::EC2::Instance"));
    let ec2 = data.ec2.unwrap();
    assert_eq!(ec2["instance_id"], "i-0abc");
    assert_eq!(ec2["availability_zone"], "us-east-1b");
    assert_eq!(ec2["instance_size"], "t3.micro");
    assert_eq!(data.account_id.as_deref(), Some("123456789012"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_endpoints_are_not_errors() {
    // A port that was just closed: connection refused, quickly.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let data = detect(
        &Plugins::none()
            .ec2(true)
            .imds_endpoint(dead.clone())
            .eks(true)
            .k8s_token_path("/nonexistent/token"),
    )
    .await;
    assert_eq!(data.origin, None);
    assert!(data.ec2.is_none() && data.eks.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_is_detected_from_the_token_file() {
    let dir = std::env::temp_dir().join(format!("xray-eks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "t").unwrap();
    let data = detect(
        &Plugins::none()
            .eks(true)
            .k8s_token_path(token.to_string_lossy()),
    )
    .await;
    assert_eq!(data.origin, Some("AWS::EKS::Container"));
    assert!(data.eks.unwrap()["pod"].is_string());
    std::fs::remove_dir_all(dir).ok();
}
