//! TikTok as a second destination, through the pipeline as deployed: webhook-ingest → SQS FIFO
//! (moto) → capi-dispatch with DynamoDB and Secrets Manager (moto) → the loopback Graph mock and
//! the loopback TikTok mock, each checking every request. A TikTok ad's chat reaches TikTok
//! only, a Meta ad's chat Meta only; a redelivery sends nothing twice to either; TikTok's codes
//! retry, isolate into the dead-letter queue, or keep the records and alarm.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wacapi_shared::channels::split;
use wacapi_shared::dispatch::metric_names;
use wacapi_shared::ingest::attributes;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::values::hashing::sha256_hex;
use wacapi_tests::stack::{
    SAMPLE_NOW, Stack, StackOptions, freshen, inbound_records, total, unix_now,
};
use wacapi_tests::tiktok_mock::TikTokReply;
use wacapi_tests::{json_files, message_attribute, sample};

fn tiktok_sample(name: &str) -> Vec<u8> {
    json_files("examples/webhooks/tiktok")
        .into_iter()
        .find(|(n, _)| n.ends_with(name))
        .unwrap_or_else(|| panic!("no sample {name}"))
        .1
}

fn assert_clean(stack: &Stack) {
    assert_eq!(
        stack.graph.violations(),
        Vec::<String>::new(),
        "Graph contract"
    );
    assert_eq!(
        stack.tiktok.violations(),
        Vec::<String>::new(),
        "TikTok contract"
    );
}

/// Posts the TikTok chat (the ad's prefilled first message, then an order), freshened to `now`.
async fn post_tiktok_chat(stack: &Stack, now: i64) {
    for name in ["first-message-from-tiktok-ad", "order"] {
        let (status, n) = stack.post(&freshen(&tiktok_sample(name), now)).await;
        assert_eq!((status, n), (200, 1), "{name}");
    }
}

fn metrics(invocations: Vec<capi_dispatch::Invocation>) -> Metrics {
    let mut all = Metrics::new("wacapi", "capi-dispatch");
    for i in invocations {
        all.merge(i.metrics);
    }
    all
}

#[tokio::test]
async fn a_tiktok_chat_reaches_tiktok_only_and_a_meta_chat_meta_only() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    post_tiktok_chat(&stack, now).await;
    for name in ["text-from-ctwa-ad", "order"] {
        stack.post(&freshen(&sample(name), now)).await;
    }
    let invocations = stack.pump(5).await;
    let t = total(&invocations);
    assert_eq!((t.sent, t.skipped, t.failed, t.dead_lettered), (3, 1, 0, 0));

    let requests = stack.tiktok.received();
    assert_eq!(requests.len(), 1, "one request for the event set");
    let request = &requests[0].body;
    let tiktok_events = stack.tiktok.accepted_events();
    assert_eq!(
        tiktok_events.len(),
        1,
        "exactly one TikTok event: the order"
    );
    let event = &tiktok_events[0];
    assert_eq!(event["event"], "Purchase");
    assert_eq!(
        event["user"],
        json!({"phone": sha256_hex(b"+447700900123")})
    );
    assert_eq!(event["properties"]["value"], 42.5);
    assert_eq!(event["properties"]["currency"], "GBP");
    assert_eq!(request["event_source"], "offline");
    assert_eq!(request["event_source_id"], "OFFLINE7X2K9Q1EXAMPLE");
    let mut stable = request.clone();
    stable["data"][0]["event_time"] =
        json!(event["event_time"].as_i64().unwrap() - now + SAMPLE_NOW);
    insta::assert_json_snapshot!("tiktok-order", stable);

    // Meta received the Meta user's click and order, and nothing of the TikTok user's.
    let meta = stack.graph.accepted_events();
    let names: Vec<&str> = meta
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ViewContent", "Purchase"]);
    let meta_text = Value::from(meta).to_string();
    assert!(
        !meta_text.contains(&sha256_hex(b"447700900123")),
        "the TikTok user's phone"
    );

    let m = metrics(invocations);
    assert_eq!(
        m.total_by(metric_names::EVENTS_SENT, "Destination", "tiktok"),
        1.0
    );
    assert_eq!(
        m.total_by(metric_names::EVENTS_SENT, "Destination", "meta"),
        2.0
    );
    assert_eq!(
        m.total(wacapi_shared::tiktok::metric_names::TIKTOK_REQUESTS),
        1.0
    );
    assert_clean(&stack);
}

#[tokio::test]
async fn a_redelivered_batch_sends_nothing_twice_to_either_platform() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    post_tiktok_chat(&stack, now).await;
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    stack.pump(5).await;
    let (tiktok_before, meta_before) =
        (stack.tiktok.received().len(), stack.graph.received().len());
    assert_eq!((tiktok_before, meta_before), (1, 1));

    // The same records again (SQS redelivers after a lost response): every event is already
    // in the ledger.
    let mut signals = split(&freshen(
        &tiktok_sample("first-message-from-tiktok-ad"),
        now,
    ))
    .unwrap()
    .signals;
    signals.extend(
        split(&freshen(&tiktok_sample("order"), now))
            .unwrap()
            .signals,
    );
    signals.extend(
        split(&freshen(&sample("text-from-ctwa-ad"), now))
            .unwrap()
            .signals,
    );
    let mut m = Metrics::new("wacapi", "test");
    let report = stack
        .dispatch
        .dispatcher
        .dispatch(
            &inbound_records(&signals),
            now,
            Instant::now() + Duration::from_secs(30),
            &mut m,
        )
        .await;
    assert_eq!(report.records.duplicate, 2, "{report:?}");
    assert_eq!(report.events_sent, 0);
    assert_eq!(stack.tiktok.received().len(), tiktok_before);
    assert_eq!(stack.graph.received().len(), meta_before);
    assert_clean(&stack);
}

#[tokio::test]
async fn too_many_requests_is_retried_inside_the_invocation() {
    let stack = Stack::new(StackOptions::default()).await;
    stack
        .tiktok
        .script([TikTokReply::code(40100, "Too many requests")]);
    post_tiktok_chat(&stack, unix_now()).await;
    let t = total(&stack.pump(5).await);
    assert_eq!((t.sent, t.failed, t.dead_lettered), (1, 0, 0));
    let codes: Vec<i64> = stack.tiktok.received().iter().map(|r| r.code).collect();
    assert_eq!(codes, [40100, 0]);
    assert_clean(&stack);
}

#[tokio::test]
async fn an_invalid_event_is_dead_lettered_with_tiktok_s_code_and_message() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.tiktok.refuse_event("Purchase");
    post_tiktok_chat(&stack, unix_now()).await;
    let invocations = stack.pump(5).await;
    let t = total(&invocations);
    assert_eq!((t.sent, t.dead_lettered), (0, 1));
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    let attr = |name: &str| message_attribute(&dead[0], name).unwrap_or_default();
    assert_eq!(attr(attributes::REASON), "tiktok_invalid_event");
    assert_eq!(
        attr(wacapi_shared::tiktok::client::attributes::CODE),
        "40002"
    );
    assert_eq!(
        attr(wacapi_shared::tiktok::client::attributes::MESSAGE),
        "Invalid value for event"
    );
    assert_eq!(
        attr(wacapi_shared::tiktok::client::attributes::REQUEST_ID),
        "mock-40002"
    );
    assert_eq!(attr(wacapi_shared::dispatch::EVENT_ID_ATTRIBUTE).len(), 64);
    assert!(metrics(invocations).total(wacapi_shared::tiktok::metric_names::TIKTOK_ERRORS) >= 1.0);
}

#[tokio::test]
async fn a_refused_token_keeps_the_record_and_alarms() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.tiktok.script([TikTokReply::code(
        40105,
        "Access token is incorrect or has been revoked",
    )]);
    let now = unix_now();
    post_tiktok_chat(&stack, now).await;

    let messages = stack.receive().await;
    let first = stack.invoke(&messages, Duration::from_secs(30)).await;
    assert_eq!(first.report.records.failed, 1, "{:?}", first.report);
    assert_eq!(first.response.batch_item_failures.len(), 1);
    assert_eq!(
        first
            .metrics
            .total(wacapi_shared::tiktok::metric_names::TIKTOK_AUTH_ERRORS),
        1.0
    );
    assert!(
        stack.dead_letters().await.is_empty(),
        "kept, not dead-lettered"
    );
    stack.settle(&messages, &first.response).await;

    // The token is fixed (the script is spent): the redelivery sends it, once.
    let t = total(&stack.pump(5).await);
    assert_eq!(t.sent, 1);
    assert_eq!(stack.tiktok.accepted_events().len(), 1);
    assert_clean(&stack);
}

/// The example configuration with its TikTok event set turned into a CRM event set.
fn crm_rules() -> String {
    wacapi_tests::stack::example_rules().replace(
        "first_message_pattern = \"(?i)saw your ad on tiktok\" }",
        "first_message_pattern = \"(?i)saw your ad on tiktok\", event_source = \"crm\" }",
    )
}

#[tokio::test]
async fn a_crm_event_set_receives_only_crm_events_naming_a_tiktok_lead() {
    let rules = crm_rules();
    assert!(rules.contains("event_source = \"crm\""));
    let stack = Stack::new(StackOptions {
        rules: Some(rules),
        ..StackOptions::default()
    })
    .await;
    let now = unix_now();
    // The chat's order carries no TikTok lead id: skipped by name, nothing sent.
    post_tiktok_chat(&stack, now).await;
    // The CRM qualifies the lead, with and without TikTok's lead id.
    let event = |key: &str, lead: Option<&str>| {
        let mut e = json!({"event_name": "QualifiedLead", "idempotency_key": key,
            "user": {"wa_id": "447700900123"}, "waba_id": "102290129340398",
            "user_data": {"external_id": "crm-4471"}});
        if let Some(lead) = lead {
            e["tiktok_lead_id"] = json!(lead);
        }
        e
    };
    let (status, _) = stack
        .post_events(
            &json!({"events": [event("q-1", Some("7301234567890123456")), event("q-2", None)]}),
        )
        .await;
    assert_eq!(status, 200);
    let invocations = stack.pump(5).await;
    let t = total(&invocations);
    assert_eq!((t.sent, t.failed, t.dead_lettered), (1, 0, 0), "{t:?}");

    let events = stack.tiktok.accepted_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "QualifiedLead");
    assert_eq!(events[0]["lead"], json!({"lead_id": "7301234567890123456"}));
    assert_eq!(
        events[0]["user"]["external_id"],
        json!(sha256_hex(b"crm-4471"))
    );
    assert_eq!(stack.tiktok.received()[0].body["event_source"], "crm");
    let m = metrics(invocations);
    assert_eq!(
        m.total_by(metric_names::EVENTS_SKIPPED, "Reason", "tiktok_no_lead_id"),
        2.0,
        "the chat's order and the CRM event without a lead id"
    );
    assert!(stack.graph.accepted_events().is_empty());
    assert_clean(&stack);
}

#[tokio::test]
async fn an_offline_event_set_is_sent_no_custom_event_and_no_unlisted_currency() {
    let rules = format!(
        "{}\n[[rules]]\nname = \"asked-shipping\"\nevent = \"OrderShipped\"\ntrigger = {{ kind = \"text\", pattern = \"shipping\" }}\n",
        wacapi_tests::stack::example_rules()
    );
    let stack = Stack::new(StackOptions {
        rules: Some(rules),
        ..StackOptions::default()
    })
    .await;
    let now = unix_now();
    post_tiktok_chat(&stack, now).await;
    // A question about shipping (OrderShipped has no standard counterpart) and an order in a
    // currency TikTok does not list.
    let text = String::from_utf8(freshen(&tiktok_sample("order"), now)).unwrap();
    let order = text.replace("\"GBP\"", "\"XOF\"").replace(
        "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FCMTIzNDU2Nzg5MEFCQ0RFRjEA",
        "wamid.order-in-xof",
    );
    assert_eq!(stack.post(order.as_bytes()).await, (200, 1));
    let question =
        String::from_utf8(freshen(&tiktok_sample("first-message-from-tiktok-ad"), now)).unwrap();
    let body: Value = serde_json::from_str(&question).unwrap();
    let said = body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let question = question
        .replace(&said, "what does shipping cost?")
        .replace("wamid.", "wamid.q");
    assert_eq!(stack.post(question.as_bytes()).await, (200, 1));

    let invocations = stack.pump(5).await;
    let m = metrics(invocations);
    let names: Vec<Value> = stack
        .tiktok
        .accepted_events()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, [json!("Purchase")], "the GBP order only");
    for reason in ["tiktok_not_standard_event", "tiktok_currency_not_supported"] {
        assert_eq!(
            m.total_by(metric_names::EVENTS_SKIPPED, "Reason", reason),
            1.0,
            "{reason}"
        );
    }
    assert_clean(&stack);
}
