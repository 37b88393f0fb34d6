//! A tonic gRPC server and client traced with X-Ray, in one process.
//!
//! ```text
//! # a daemon (or `xray-local`, or `nc -ul 2000` to watch the datagrams)
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p xray-sdk-tower --example grpc
//! ```
//!
//! The server (`Server::builder().layer(XRayLayer)`, segments named `grpc-server`) answers
//! five calls made by a client whose channel has `XRayClientLayer`, inside a segment named
//! `grpc-client`:
//!
//! 1. a unary call (`OK`);
//! 2. a server-streaming call: three replies, then `OK` in the trailers;
//! 3. a unary call answered `NOT_FOUND` (`error` on both sides);
//! 4. a unary call answered `INTERNAL` (`fault` on both sides);
//! 5. a unary call whose handler panics, behind `CatchPanicLayer::custom` answering
//!    `Status::internal` (`fault`, the panic as the server segment's cause).
//!
//! Each call is a `remote` subsegment of `grpc-client`, and the parent of one `grpc-server`
//! segment. The example then shuts the recorder down (what is queued is sent) and exits. Settings come from the
//! environment (`AWS_XRAY_DAEMON_ADDRESS`, `AWS_XRAY_SDK_ENABLED`, ...).
//!
//! The protobuf code in `echo.rs` is generated from `echo.proto` and checked in: building
//! needs no `protoc`.

#![allow(clippy::print_stdout)]

mod demo;
#[allow(unreachable_pub, missing_docs, clippy::all)]
mod echo;

use std::time::Duration;

use xray_sdk::Recorder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Rule-based sampling from the daemon is not needed for a demo: sample every call.
    let recorder = Recorder::builder()
        .sampler(xray_sdk::sampling::AlwaysSample)
        .centralized_sampling(false)
        .build()?;
    let server = demo::serve(recorder.clone(), "grpc-server", demo::CatchPanic::Inside).await?;
    let mut client = demo::client(server.addr).await?;
    println!(
        "gRPC server on {}; segments go to {}",
        server.addr,
        recorder.daemon_address()
    );
    for outcome in demo::run_calls(&recorder, &mut client).await {
        println!("  {outcome}");
    }
    drop(client);
    server.stop().await;
    let report = recorder.shutdown(Duration::from_secs(5)).await;
    println!("{report:?}");
    if !report.is_complete() {
        return Err("not every segment was sent".into());
    }
    Ok(())
}
