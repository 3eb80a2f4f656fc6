//! A user keeps their ad click across identity changes (Meta's `user_changed_user_id` and
//! `user_changed_number` system messages, changelog Aug 11 2026), through the deployed wiring:
//! ingest → SQS FIFO (moto) → dispatch with the DynamoDB store (moto) → the Graph mock.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use wacapi_shared::conversion::clicks::user_key;
use wacapi_shared::signal::UserKey;
use wacapi_tests::stack::{Stack, StackOptions, freshen, total, unix_now};
use wacapi_tests::{fixture, sample};

const WABA: &str = "102290129340398";
const OLD_BSUID: &str = "BR.77701208655302741111";
const NEW_BSUID: &str = "BR.77701208655302749999";

fn shape(name: &str, now: i64) -> Vec<u8> {
    freshen(&fixture(&format!("shapes/{name}.json")), now)
}

/// Every click item in the table: (pk, ctwa_clid, clicked_at).
async fn clicks(stack: &Stack) -> Vec<(String, String, i64)> {
    let items = stack
        .ddb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    let mut out: Vec<(String, String, i64)> = items
        .iter()
        .filter_map(|item| {
            let pk = item.get("pk")?.as_s().ok()?;
            pk.starts_with("click#").then(|| {
                (
                    pk.clone(),
                    item["ctwa_clid"].as_s().unwrap().clone(),
                    item["clicked_at"].as_n().unwrap().parse().unwrap(),
                )
            })
        })
        .collect();
    out.sort();
    out
}

fn click_pk(key: UserKey<'_>) -> String {
    format!("click#{}", user_key(WABA, key))
}

#[tokio::test]
async fn a_click_under_the_old_bsuid_attributes_an_order_under_the_new_one() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    for name in ["bsuid-click-before-change", "user-changed-user-id"] {
        assert_eq!(stack.post(&shape(name, now)).await.0, 200, "{name}");
        stack.pump(5).await;
    }
    let after_change = clicks(&stack).await;
    let new_key = click_pk(UserKey::Bsuid(NEW_BSUID));
    let carried = after_change
        .iter()
        .find(|(pk, ..)| *pk == new_key)
        .expect("the click is stored under the new BSUID");
    assert_eq!(carried.1, "Aff-bsuid-click-0303");
    assert!(
        after_change
            .iter()
            .all(|(pk, ..)| !pk.contains(OLD_BSUID) && !pk.contains(NEW_BSUID)),
        "keys are hashes"
    );

    // The same system message again (Meta retries) changes nothing.
    assert_eq!(stack.post(&shape("user-changed-user-id", now)).await.0, 200);
    let mut redelivered = shape("user-changed-user-id", now);
    // A copy past SQS's 5-minute dedup window: a new message id, the same change.
    redelivered = String::from_utf8(redelivered)
        .unwrap()
        .replace(
            "wamid.system.bsuid-change-0303",
            "wamid.system.bsuid-change-0303-again",
        )
        .into_bytes();
    assert_eq!(stack.post(&redelivered).await.0, 200);
    stack.pump(5).await;
    assert_eq!(clicks(&stack).await, after_change);

    assert_eq!(
        stack.post(&shape("bsuid-order-after-change", now)).await.0,
        200
    );
    let t = total(&stack.pump(5).await);
    assert_eq!(t.sent, 1);
    let purchase: Value = stack
        .graph
        .accepted_events()
        .into_iter()
        .find(|e| e["event_name"] == "Purchase")
        .expect("the order is attributed");
    assert_eq!(purchase["user_data"]["ctwa_clid"], "Aff-bsuid-click-0303");
    assert_eq!(purchase["custom_data"]["value"], 99.8);
    assert_eq!(purchase["custom_data"]["currency"], "BRL");
    assert!(stack.graph.violations().is_empty());
}

#[tokio::test]
async fn a_number_change_carries_the_click_to_the_new_phone_and_bsuid() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    stack.pump(5).await;
    // user_changed_number: from the old phone and BSUID to 16505559999 and a new BSUID.
    stack
        .post(&freshen(&fixture("system-and-bsuid-only.json"), now))
        .await;
    stack.pump(5).await;
    let stored = clicks(&stack).await;
    let phone_hash = wacapi_shared::values::hashing::sha256_hex(b"16505559999");
    for key in [
        UserKey::Phone(&phone_hash),
        UserKey::Bsuid("US.99991208655302741918"),
    ] {
        let pk = click_pk(key);
        let click = stored.iter().find(|(k, ..)| *k == pk);
        assert!(
            click.is_some_and(|(_, clid, _)| clid.starts_with("Aff-n8ZT")),
            "{key:?} holds the click: {stored:?}"
        );
    }
    // A newer click under the new identity is not replaced by a late copy of the change.
    let newer = AttributeValue::N((now + 10).to_string());
    let pk = click_pk(UserKey::Phone(&phone_hash));
    stack
        .ddb
        .update_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(pk.clone()))
        .update_expression("SET ctwa_clid = :c, clicked_at = :t")
        .expression_attribute_values(":c", AttributeValue::S("Aff-newer".into()))
        .expression_attribute_values(":t", newer)
        .send()
        .await
        .unwrap();
    let again = String::from_utf8(freshen(&fixture("system-and-bsuid-only.json"), now))
        .unwrap()
        .replace("wamid.system0001", "wamid.system0001-late")
        .into_bytes();
    stack.post(&again).await;
    stack.pump(5).await;
    let after = clicks(&stack).await;
    let kept = after.iter().find(|(k, ..)| *k == pk).unwrap();
    assert_eq!(kept.1, "Aff-newer");
}
