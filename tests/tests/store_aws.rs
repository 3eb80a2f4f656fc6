//! The DynamoDB adapter of the dispatcher's store, against moto through the real AWS SDK:
//! bulk reads, one conditional transaction for click writes and claims (refused items tell
//! sent from leased), chunking past DynamoDB's 100-item limits, releases and TTLs, as items in
//! the table. The rules every store keeps (claims, leases, newest click wins, report counts)
//! are checked by the store contract, in `store_contract_aws.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use wacapi_shared::aws::dynamo::DynamoStore;
use wacapi_shared::channels::Channel;
use wacapi_shared::conversion::clicks::Click;
use wacapi_shared::model::Destination;
use wacapi_shared::report::{FactKey, Tally};
use wacapi_shared::store::ledger::{Claim, ClaimRequest, SentMark};
use wacapi_shared::store::{ClickWrite, DispatchStore};
use wacapi_tests::stack::create_table;

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let aws = wacapi_tests::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = create_table(&ddb).await;
    (DynamoStore::new(ddb.clone(), &table, 600), ddb, table)
}

fn click(key: &str, clid: &str, at: i64) -> ClickWrite {
    ClickWrite {
        key: key.into(),
        click: Click {
            ctwa_clid: Some(clid.into()),
            ad_id: Some("ad-1".into()),
            clicked_at: at,
            channel: Channel::Whatsapp,
            destination: Destination::Meta,
        },
    }
}

fn claim(id: &str, lease_until: i64) -> ClaimRequest {
    ClaimRequest {
        event_id: id.into(),
        lease_until,
        expires_at: 10_000,
    }
}

fn sent(id: &str) -> SentMark {
    SentMark {
        event_id: id.into(),
        fbtrace_id: Some("trace".into()),
        sent_at: 150,
        expires_at: 10_000,
    }
}

async fn item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    ddb.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn one_transaction_claims_fresh_events_and_names_sent_and_leased_ones() {
    let (store, ddb, table) = store().await;
    assert_eq!(
        store
            .commit(&[], &[claim("sent", 200), claim("leased", 200)], 100)
            .await
            .unwrap(),
        [Claim::Claimed, Claim::Claimed]
    );
    store.mark_sent(&[sent("sent")], &[]).await.unwrap();
    // A new batch: one fresh event between a sent one and one another invocation holds.
    let answers = store
        .commit(
            &[click("k1", "clid-a", 100)],
            &[
                claim("sent", 300),
                claim("fresh", 300),
                claim("leased", 300),
            ],
            150,
        )
        .await
        .unwrap();
    assert_eq!(answers, [Claim::AlreadySent, Claim::Claimed, Claim::Leased]);
    // The refused items did not stop the rest: the click and the fresh claim are written.
    let fresh = item(&ddb, &table, "event#fresh").await.unwrap();
    assert_eq!(fresh["state"], AttributeValue::S("pending".into()));
    assert_eq!(fresh["expires_at"], AttributeValue::N("10000".into()));
    let stored = item(&ddb, &table, "click#k1").await.unwrap();
    assert_eq!(stored["expires_at"], AttributeValue::N("700".into()), "TTL");
    // The lease ran out (a crashed invocation): claimable again; a sent mark never is.
    assert_eq!(
        store
            .commit(&[], &[claim("leased", 400), claim("sent", 400)], 201)
            .await
            .unwrap(),
        [Claim::Claimed, Claim::AlreadySent]
    );
    // Release drops pending claims only.
    store
        .release(&["leased".into(), "sent".into()])
        .await
        .unwrap();
    assert!(item(&ddb, &table, "event#leased").await.is_none());
    assert_eq!(
        item(&ddb, &table, "event#sent").await.unwrap()["state"],
        AttributeValue::S("sent".into())
    );
}

#[tokio::test]
async fn a_newer_click_of_another_channel_or_platform_leaves_no_attribute_of_the_old_one() {
    let (store, ddb, table) = store().await;
    store
        .commit(&[click("u", "clid", 100)], &[], 0)
        .await
        .unwrap();
    let tiktok = Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: 150,
        channel: Channel::Whatsapp,
        destination: Destination::TikTok,
    };
    let write = ClickWrite {
        key: "u".into(),
        click: tiktok.clone(),
    };
    store.commit(&[write], &[], 0).await.unwrap();
    assert_eq!(store.clicks(&["u".into()]).await.unwrap()["u"], tiktok);
    let messenger = Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: 200,
        channel: Channel::Messenger,
        destination: Destination::Meta,
    };
    let write = ClickWrite {
        key: "u".into(),
        click: messenger.clone(),
    };
    store.commit(&[write], &[], 0).await.unwrap();
    assert_eq!(store.clicks(&["u".into()]).await.unwrap()["u"], messenger);
    let item = ddb
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let names: std::collections::BTreeSet<&str> = item
        .iter()
        .flat_map(|i| i.keys())
        .map(String::as_str)
        .collect();
    assert!(
        !names.contains("ctwa_clid") && !names.contains("ad_id") && !names.contains("destination"),
        "removed, not left stale: {names:?}"
    );
}

#[tokio::test]
async fn commits_and_reads_past_dynamodb_limits_are_chunked() {
    let (store, _, _) = store().await;
    // 130 clicks and 120 claims: three transactions of at most 100 items.
    let clicks: Vec<ClickWrite> = (0..130)
        .map(|i| click(&format!("k{i}"), &format!("clid-{i}"), 100 + i))
        .collect();
    let claims: Vec<ClaimRequest> = (0..120).map(|i| claim(&format!("e{i}"), 500)).collect();
    let answers = store.commit(&clicks, &claims, 100).await.unwrap();
    assert_eq!(answers, vec![Claim::Claimed; 120]);
    let marks: Vec<SentMark> = (0..60).map(|i| sent(&format!("e{i}"))).collect();
    store.mark_sent(&marks, &[]).await.unwrap();
    let again = store.commit(&[], &claims, 100).await.unwrap();
    assert_eq!(again[..60], vec![Claim::AlreadySent; 60]);
    assert_eq!(again[60..], vec![Claim::Leased; 60]);
    // 130 keys: two BatchGetItem calls.
    let keys: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
    let found = store.clicks(&keys).await.unwrap();
    assert_eq!(found.len(), 130);
    assert_eq!(found["k129"].ctwa_clid.as_deref(), Some("clid-129"));
}

/// A DynamoDB stand-in on loopback that answers `TransactWriteItems` from a script, so the
/// adapter's handling of cancellation reasons moto cannot produce is driven through the real SDK.
async fn scripted_dynamodb(answers: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(answers.into_iter()));
    let app = Router::new().route(
        "/",
        post({
            let seen = Arc::clone(&seen);
            move |body: String| {
                let seen = Arc::clone(&seen);
                let script = Arc::clone(&script);
                async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    let (status, answer) = script.lock().unwrap().next().expect("scripted answer");
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/x-amz-json-1.0")],
                        answer,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// What DynamoDB refuses in a `TransactWriteItems` request and moto lets through: a token over
/// 36 characters, an expression value or name no expression uses, two items on one key, more
/// than 100 items.
fn dynamodb_would_refuse(request: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let token = request["ClientRequestToken"].as_str().unwrap_or_default();
    if !(1..=36).contains(&token.len()) {
        v.push(format!("ClientRequestToken of {} characters", token.len()));
    }
    let items = request["TransactItems"].as_array().unwrap();
    if items.len() > 100 {
        v.push(format!("{} items", items.len()));
    }
    let mut keys = std::collections::HashSet::new();
    for item in items {
        let update = &item["Update"];
        let key = match &item["Put"] {
            Value::Null => update["Key"].clone(),
            put => json!({"pk": put["Item"]["pk"]}),
        };
        if !keys.insert(key.to_string()) {
            v.push(format!("two items on {key}"));
        }
        let expressions = format!(
            "{} {}",
            update["UpdateExpression"].as_str().unwrap_or_default(),
            update["ConditionExpression"].as_str().unwrap_or_default()
        );
        for field in ["ExpressionAttributeValues", "ExpressionAttributeNames"] {
            for name in update[field].as_object().into_iter().flat_map(|o| o.keys()) {
                let used = expressions
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '#'))
                    .any(|word| word == name);
                if !used {
                    v.push(format!("{field} {name} is used by no expression"));
                }
            }
        }
    }
    v
}

fn cancelled(codes: &[&str]) -> (u16, String) {
    let reasons: Vec<Value> = codes.iter().map(|c| json!({"Code": c})).collect();
    (
        400,
        json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
               "Message": "Transaction cancelled", "CancellationReasons": reasons})
        .to_string(),
    )
}

async fn store_at(url: &str) -> DynamoStore {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "wacapi", 600)
}

#[tokio::test]
async fn a_conflicting_or_throttled_item_is_retried_and_an_invalid_one_fails_the_commit() {
    // A conflict on the claim: the retry holds both items again, with a fresh idempotency token.
    let (url, seen) = scripted_dynamodb(vec![
        cancelled(&["None", "TransactionConflict"]),
        cancelled(&["ThrottlingError", "None"]),
        (200, "{}".into()),
    ])
    .await;
    let store = store_at(&url).await;
    let answers = store
        .commit(&[click("k", "clid", 100)], &[claim("e", 500)], 100)
        .await
        .unwrap();
    assert_eq!(answers, [Claim::Claimed]);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r["TransactItems"].as_array().unwrap().len(), 2);
    }
    assert_ne!(
        requests[0]["ClientRequestToken"],
        requests[1]["ClientRequestToken"]
    );

    // A click without an ad id takes the REMOVE branch: still no unused value.
    let (url, seen) = scripted_dynamodb(vec![(200, "{}".into())]).await;
    let mut no_ad = click("k", "clid", 100);
    no_ad.click.ad_id = None;
    store_at(&url)
        .await
        .commit(&[no_ad], &[claim("e", 500)], 100)
        .await
        .unwrap();
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(dynamodb_would_refuse(&request), Vec::<String>::new());
    // The checker bites: an extra value is caught.
    let mut tampered = request.clone();
    tampered["TransactItems"][0]["Update"]["ExpressionAttributeValues"][":ad"] = json!({"S": "x"});
    assert_eq!(
        dynamodb_would_refuse(&tampered),
        ["ExpressionAttributeValues :ad is used by no expression"]
    );

    // A reason that is no condition, conflict or throttle fails the commit: nothing is assumed.
    let (url, _) = scripted_dynamodb(vec![cancelled(&["ValidationError", "None"])]).await;
    let err = store_at(&url)
        .await
        .commit(&[click("k", "clid", 100)], &[claim("e", 500)], 100)
        .await
        .unwrap_err();
    assert!(err.0.contains("ValidationError"), "{err}");

    // Cancelled with no reason naming an item: an error, not a loop.
    let (url, seen) = scripted_dynamodb(vec![cancelled(&["None", "None"])]).await;
    assert!(
        store_at(&url)
            .await
            .commit(&[click("k", "clid", 100)], &[claim("e", 500)], 100)
            .await
            .is_err()
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn marks_and_the_counts_of_their_events_are_one_transaction_retried_whole_on_a_conflict() {
    // Another batch holds the aggregate: DynamoDB cancels with TransactionConflict, and the whole
    // transaction (marks and counts together) is tried again.
    let (url, seen) = scripted_dynamodb(vec![
        cancelled(&["None", "None", "TransactionConflict"]),
        (200, "{}".into()),
    ])
    .await;
    let key = FactKey {
        day: "2026-12-01".into(),
        outcome: "sent".into(),
        destination: "meta".into(),
        channel: "whatsapp".into(),
        account: "102290129340398".into(),
        ad_id: "ad-1".into(),
        rule: "order-purchase".into(),
        event_name: "Purchase".into(),
        currency: "USD".into(),
    };
    let tally = Tally {
        count: 2,
        value: 0.1 + 0.2,
        keys: [("ctwa_clid".to_owned(), 2), ("ph".to_owned(), 1)].into(),
    };
    store_at(&url)
        .await
        .mark_sent(&[sent("a"), sent("b")], &[(key.clone(), tally)])
        .await
        .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r["TransactItems"].as_array().unwrap().len(), 3);
        assert_eq!(dynamodb_would_refuse(r), Vec::<String>::new());
    }
    assert_ne!(
        requests[0]["ClientRequestToken"],
        requests[1]["ClientRequestToken"]
    );
    let update = &requests[1]["TransactItems"][2]["Update"];
    assert_eq!(
        update["Key"]["pk"]["S"],
        format!("report#2026-12-01#{}", key.id())
    );
    let expression = update["UpdateExpression"].as_str().unwrap();
    assert!(expression.contains(" ADD "), "{expression}");
    assert!(
        update.get("ConditionExpression").is_none(),
        "an ADD needs no read or condition"
    );
    let values = &update["ExpressionAttributeValues"];
    assert_eq!(values[":v"]["N"], "0.3", "no binary noise reaches the sum");
    assert_eq!(values[":n"]["N"], "2");

    // Anything else fails the write (the dispatcher alarms; nothing is half-written).
    let (url, seen) = scripted_dynamodb(vec![cancelled(&["None", "ValidationError"])]).await;
    assert!(
        store_at(&url)
            .await
            .mark_sent(&[sent("a")], &[(key, Tally::default())])
            .await
            .is_err()
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}
