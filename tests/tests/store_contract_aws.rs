//! The store contract ([`wacapi_shared::store::contract`]) against the DynamoDB adapter, on
//! moto through the real AWS SDK, in a table made as the Terraform module makes it; the report
//! is read back as `wacapi report --table` reads it. What only DynamoDB has (transaction
//! chunking, cancellation reasons, item attributes) is checked in `store_aws.rs`.

#![allow(clippy::unwrap_used)]

use wacapi_shared::aws::dynamo::DynamoStore;
use wacapi_shared::aws::report::read_report;
use wacapi_shared::report::Filter;
use wacapi_shared::store::contract;
use wacapi_tests::stack::create_table;

#[tokio::test]
async fn the_dynamodb_store_keeps_the_store_contract() {
    let aws = wacapi_tests::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = create_table(&ddb).await;
    // Clicks are kept a day, past the hour the contract needs.
    let store = DynamoStore::new(ddb.clone(), &table, 86_400);
    let report = async || read_report(&ddb, &table, &Filter::default()).await.unwrap();
    contract::all(&store, report).await;
}
