//! The DynamoDB adapter of the dispatcher's store, against moto through the real AWS SDK:
//! bulk reads, one conditional transaction for click writes and claims (refused items tell
//! sent from leased), chunking past DynamoDB's 100-item limits, releases and TTLs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_sdk_dynamodb::types::AttributeValue;
use wacapi_shared::clicks::Click;
use wacapi_shared::dynamo::DynamoStore;
use wacapi_shared::ledger::{Claim, ClaimRequest, SentMark};
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
            ctwa_clid: clid.into(),
            ad_id: Some("ad-1".into()),
            clicked_at: at,
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
    store.mark_sent(&[sent("sent")]).await.unwrap();
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
async fn the_newest_click_wins_and_one_read_returns_every_stored_key() {
    let (store, _, _) = store().await;
    store
        .commit(&[click("a", "new", 200), click("b", "only", 50)], &[], 0)
        .await
        .unwrap();
    // A late, older click for `a` is refused by its condition; `c` is new.
    store
        .commit(&[click("a", "old", 100), click("c", "third", 120)], &[], 0)
        .await
        .unwrap();
    let keys: Vec<String> = ["a", "b", "c", "absent", "a"].map(String::from).to_vec();
    let found = store.clicks(&keys).await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(found["a"].ctwa_clid, "new");
    assert_eq!(found["a"].ad_id.as_deref(), Some("ad-1"));
    assert_eq!(found["b"].clicked_at, 50);
    assert_eq!(found["c"].ctwa_clid, "third");
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
    store.mark_sent(&marks).await.unwrap();
    let again = store.commit(&[], &claims, 100).await.unwrap();
    assert_eq!(again[..60], vec![Claim::AlreadySent; 60]);
    assert_eq!(again[60..], vec![Claim::Leased; 60]);
    // 130 keys: two BatchGetItem calls.
    let keys: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
    let found = store.clicks(&keys).await.unwrap();
    assert_eq!(found.len(), 130);
    assert_eq!(found["k129"].ctwa_clid, "clid-129");
}
