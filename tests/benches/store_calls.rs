//! The floor under the dispatcher's CPU: what one DynamoDB call costs the calling thread when it
//! goes through the AWS SDK, against a keep-alive loopback stub (no server work counted) and
//! against moto (which closes the connection after each answer, so every call reconnects).
//!
//! Run: `cargo bench -p wacapi-tests --bench store_calls` (`WACAPI_BENCH_CALLS=N`).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::routing::post;
use wacapi_tests::stack::create_table;
use wacapi_tests::thread_cpu;

/// A DynamoDB stand-in that answers every call with an empty JSON object, keeping connections.
fn start_stub() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let app = Router::new().route(
                "/",
                post(|| async { ([("content-type", "application/x-amz-json-1.0")], "{}") }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

async fn per_call(label: &str, calls: usize, ddb: &aws_sdk_dynamodb::Client, table: &str) {
    // Warm up: connection, credentials, endpoint resolution.
    for i in 0..20 {
        get(ddb, table, i).await;
    }
    let before = thread_cpu();
    let wall = std::time::Instant::now();
    for i in 0..calls {
        get(ddb, table, i).await;
    }
    let cpu = thread_cpu() - before;
    println!(
        "| GetItem via the AWS SDK, {label} | {:.0} µs CPU | {:.0} µs wall |",
        cpu.as_secs_f64() * 1e6 / calls as f64,
        wall.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
}

async fn get(ddb: &aws_sdk_dynamodb::Client, table: &str, i: usize) {
    ddb.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("click#{i:064}")))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
}

fn main() {
    let calls: usize = std::env::var("WACAPI_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let stub = start_stub();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("| call | CPU of the calling thread | wall |");
        println!("|---|---|---|");
        let ddb = client(&stub).await;
        per_call("keep-alive loopback stub", calls, &ddb, "t").await;
        let ddb = client(wacapi_tests::moto_url()).await;
        let table = create_table(&ddb).await;
        per_call("moto", calls / 4, &ddb, &table).await;
    });
}
