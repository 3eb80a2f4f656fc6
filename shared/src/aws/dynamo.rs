//! DynamoDB adapter of [`DispatchStore`]: one on-demand table keyed by `pk` (string), with a TTL
//! attribute `expires_at` on every item. Per SQS batch: one `BatchGetItem` (clicks), one
//! `TransactWriteItems` (click writes and claims, each conditional), one `TransactWriteItems`
//! (sent marks and the report's `ADD`s, so an event is counted exactly when it is marked);
//! `DeleteItem` only to release claims on failure paths.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | click | `click#<sha256(account, identity)>` | `ctwa_clid` (WhatsApp), `ad_id`, `channel` (not WhatsApp), `destination` (not Meta), `clicked_at`, `expires_at` |
//! | ledger | `event#<event_id>` | `state` (`pending`/`sent`), `lease_until`, `sent_at`, `fbtrace_id`, `expires_at` |
//! | report | `report#<day>#<key id>` | `day`, `outcome`, `destination`, `channel`, `account`, `ad_id`, `rule`, `event_name`, `currency` (empty ones left out), `n`, `value`, `k_<match key>`, `expires_at` |
//!
//! Users are keyed by hash only; no phone number or BSUID is stored.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use crate::conversion::clicks::{Click, StoreError};
use crate::report::{FactKey, Tally};
use crate::store::ledger::{Claim, ClaimRequest, SentMark};
use crate::store::{ClickWrite, DispatchStore};
use crate::values::money::round_money;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The TTL attribute (unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The wacapi table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    click_ttl_seconds: i64,
}

impl DynamoStore {
    /// A store over `table`; clicks expire `click_ttl_seconds` after the click.
    pub fn new(client: Client, table: impl Into<String>, click_ttl_seconds: i64) -> Self {
        Self {
            client,
            table: table.into(),
            click_ttl_seconds,
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn store_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync,
{
    StoreError(DisplayErrorContext(e).to_string())
}

pub(crate) fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn event_pk(event_id: &str) -> String {
    format!("event#{event_id}")
}

/// Keys per `BatchGetItem` call (the DynamoDB maximum).
const MAX_BATCH_GET: usize = 100;

/// Items per `TransactWriteItems` call (the DynamoDB maximum).
const MAX_TRANSACTION: usize = 100;

/// Attempts of one bulk call while DynamoDB leaves work unprocessed or transactions conflict.
const MAX_ATTEMPTS: u32 = 5;

fn click_pk(key: &str) -> String {
    format!("click#{key}")
}

/// Short backoff between attempts of one bulk call (20, 40, 80, 160 ms).
async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 << attempt.min(5))).await;
}

/// A fresh idempotency token for one `TransactWriteItems` request: the SDK's own retries of
/// that request reuse it, so a retry after a lost answer finds the transaction done instead of
/// its own claims.
fn request_token() -> String {
    let state = RandomState::new();
    let a = state.hash_one((std::process::id(), std::time::SystemTime::now()));
    let b = RandomState::new().hash_one(a);
    // DynamoDB takes at most 36 characters here: 32 hex digits.
    format!("{a:016x}{b:016x}")
}

/// The report aggregate's `pk`.
pub fn report_pk(key: &FactKey) -> String {
    format!("report#{}#{}", key.day, key.id())
}

/// A sent mark, as a transaction item (unconditional: only the claim holder writes it).
fn mark_item(table: &str, m: &SentMark) -> Result<TransactWriteItem, StoreError> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(event_pk(&m.event_id))),
        ("state".to_owned(), s("sent")),
        ("sent_at".to_owned(), n(m.sent_at)),
        (TTL_ATTRIBUTE.to_owned(), n(m.expires_at)),
    ]);
    if let Some(trace) = &m.fbtrace_id {
        item.insert("fbtrace_id".to_owned(), s(trace));
    }
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The report fields of an aggregate, by attribute name.
fn report_fields(key: &FactKey) -> [(&'static str, &str); 9] {
    [
        ("day", &key.day),
        ("outcome", &key.outcome),
        ("destination", &key.destination),
        ("channel", &key.channel),
        ("account", &key.account),
        ("ad_id", &key.ad_id),
        ("rule", &key.rule),
        ("event_name", &key.event_name),
        ("currency", &key.currency),
    ]
}

/// An aggregate's `ADD` of one batch's tally: counts and sums add atomically, so concurrent
/// batches counting under the same key all count.
fn report_item(table: &str, key: &FactKey, tally: &Tally) -> Result<TransactWriteItem, StoreError> {
    let mut update = Update::builder()
        .table_name(table)
        .key(PK, s(report_pk(key)))
        .expression_attribute_names("#n", "n")
        .expression_attribute_names("#v", "value")
        .expression_attribute_names("#exp", TTL_ATTRIBUTE)
        .expression_attribute_values(":n", n(tally.count as i64))
        // Micro-unit rounding keeps binary noise out of DynamoDB's exact decimal sum.
        .expression_attribute_values(
            ":v",
            AttributeValue::N(round_money(tally.value).to_string()),
        )
        .expression_attribute_values(":exp", n(key.expires_at()));
    let mut set = vec!["#exp = :exp".to_owned()];
    for (i, (name, value)) in report_fields(key).into_iter().enumerate() {
        // Empty fields are left out (DynamoDB keeps no empty strings in key-like fields).
        if !value.is_empty() {
            set.push(format!("#f{i} = :f{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), s(value));
        }
    }
    let mut add = vec!["#n :n".to_owned(), "#v :v".to_owned()];
    for (i, (k, count)) in tally.keys.iter().enumerate() {
        add.push(format!("#k{i} :k{i}"));
        update = update
            .expression_attribute_names(format!("#k{i}"), format!("k_{k}"))
            .expression_attribute_values(format!(":k{i}"), n(*count as i64));
    }
    let update = update
        .update_expression(format!("SET {} ADD {}", set.join(", "), add.join(", ")))
        .build()
        .map_err(|e| StoreError(e.to_string()))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// One item of a commit: a click write or a claim.
enum Op<'a> {
    Click(&'a ClickWrite),
    Claim(usize, &'a ClaimRequest),
}

impl DynamoStore {
    fn op_item(&self, op: &Op<'_>, now: i64) -> Result<TransactWriteItem, StoreError> {
        let update = match op {
            Op::Click(write) => {
                let click = &write.click;
                // Optional attributes are set when present and removed when not, so a click
                // replacing another never keeps the other's click id, ad, channel or platform.
                let channel = (!click.channel.is_whatsapp()).then(|| click.channel.as_str());
                let destination =
                    (!click.destination.is_meta()).then(|| click.destination.as_str());
                let optional = [
                    ("ctwa_clid", ":clid", click.ctwa_clid.as_deref()),
                    ("ad_id", ":ad", click.ad_id.as_deref()),
                    ("channel", ":ch", channel),
                    ("destination", ":dest", destination),
                ];
                let mut set = vec![
                    "clicked_at = :at".to_owned(),
                    "expires_at = :exp".to_owned(),
                ];
                let mut remove = Vec::new();
                for (name, placeholder, value) in optional {
                    match value {
                        Some(_) => set.push(format!("{name} = {placeholder}")),
                        None => remove.push(name),
                    }
                }
                let mut expression = format!("SET {}", set.join(", "));
                if !remove.is_empty() {
                    expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
                }
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .key(PK, s(click_pk(&write.key)))
                    .update_expression(expression)
                    // Keep the newest click: an older one arriving late must not replace it.
                    .condition_expression("attribute_not_exists(pk) OR clicked_at <= :at")
                    .expression_attribute_values(":at", n(click.clicked_at))
                    .expression_attribute_values(
                        ":exp",
                        n(click.clicked_at.saturating_add(self.click_ttl_seconds)),
                    );
                for (_, placeholder, value) in optional {
                    if let Some(value) = value {
                        update = update.expression_attribute_values(placeholder, s(value));
                    }
                }
                update
            }
            Op::Claim(_, claim) => Update::builder()
                .table_name(&self.table)
                .key(PK, s(event_pk(&claim.event_id)))
                .update_expression("SET #state = :pending, lease_until = :lease, expires_at = :exp")
                .condition_expression(
                    "attribute_not_exists(pk) OR (#state = :pending AND lease_until < :now)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":lease", n(claim.lease_until))
                .expression_attribute_values(":exp", n(claim.expires_at))
                .expression_attribute_values(":now", n(now))
                // Tells a refused claim's cause (sent or leased) without another read.
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
        };
        let update = update.build().map_err(|e| StoreError(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes unconditional items in one transaction, again while DynamoDB answers that another
    /// transaction holds an item (concurrent batches adding to the same report aggregate) or
    /// throttles. A cancelled transaction wrote nothing, so trying again adds nothing twice; the
    /// SDK's own retries reuse the request token, which DynamoDB answers idempotently.
    async fn write_all(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(request_token())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let retry = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons().iter().any(|r| {
                        matches!(
                            r.code(),
                            Some(
                                "TransactionConflict"
                                    | "ThrottlingError"
                                    | "ProvisionedThroughputExceeded"
                                    | "RequestLimitExceeded"
                            )
                        )
                    })
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                _ => false,
            };
            if !retry || attempt >= MAX_ATTEMPTS {
                return Err(store_err(err));
            }
            pause(attempt).await;
        }
    }

    /// Runs one transaction of at most [`MAX_TRANSACTION`] ops. Refused items leave the
    /// transaction (a click: a newer one is stored; a claim: sent or leased) and the rest is
    /// tried again.
    async fn transact(
        &self,
        mut ops: Vec<Op<'_>>,
        now: i64,
        answers: &mut [Claim],
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !ops.is_empty() {
            attempt += 1;
            let reasons = match self.try_transaction(&ops, now).await? {
                Attempt::Written => {
                    for op in &ops {
                        if let Op::Claim(i, _) = op {
                            answers[*i] = Claim::Claimed;
                        }
                    }
                    return Ok(());
                }
                Attempt::InProgress(_) if attempt < MAX_ATTEMPTS => {
                    pause(attempt).await;
                    continue;
                }
                Attempt::InProgress(err) => return Err(err),
                Attempt::Cancelled(reasons) => reasons,
            };
            let Remaining {
                ops: kept,
                conflict,
            } = settle_refusals(ops, &reasons, answers)?;
            if conflict {
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError(format!(
                        "transaction conflicts or throttling after {attempt} attempts"
                    )));
                }
                pause(attempt).await;
            }
            ops = kept;
        }
        Ok(())
    }

    /// Sends the ops as one transaction, once (the SDK's own retries reuse its request token).
    async fn try_transaction(&self, ops: &[Op<'_>], now: i64) -> Result<Attempt, StoreError> {
        let items = ops
            .iter()
            .map(|op| self.op_item(op, now))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Attempt::Written),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Ok(
                Attempt::Cancelled(cancelled.cancellation_reasons().to_vec()),
            ),
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                Ok(Attempt::InProgress(store_err(err)))
            }
            _ => Err(store_err(err)),
        }
    }
}

/// How one attempt of a transaction ended.
enum Attempt {
    /// Every item was written.
    Written,
    /// DynamoDB was still running an earlier request of the transaction: the same may be tried
    /// again; the error is the answer when no attempt is left.
    InProgress(StoreError),
    /// Nothing was written; one reason per item, in order.
    Cancelled(Vec<CancellationReason>),
}

/// What is left of a cancelled transaction to try again.
struct Remaining<'a> {
    /// The items neither refused nor failed, in order.
    ops: Vec<Op<'a>>,
    /// Whether an item met another transaction or throttling (the next attempt waits first).
    conflict: bool,
}

/// Sorts a cancelled transaction's items by their reasons: a refused claim is answered (sent or
/// leased) and a refused click dropped (a newer one is stored), both leaving the transaction; an
/// item that met another transaction or throttling, or that was cancelled for another item's
/// sake, stays. Any other reason, or reasons that name no item, fail the whole call.
fn settle_refusals<'a>(
    ops: Vec<Op<'a>>,
    reasons: &[CancellationReason],
    answers: &mut [Claim],
) -> Result<Remaining<'a>, StoreError> {
    if reasons.len() != ops.len() {
        return Err(StoreError(format!(
            "transaction cancelled with {} reasons for {} items",
            reasons.len(),
            ops.len()
        )));
    }
    let mut kept = Vec::with_capacity(ops.len());
    let mut conflict = false;
    for (op, reason) in ops.into_iter().zip(reasons) {
        match reason.code() {
            Some("ConditionalCheckFailed") => {
                if let Op::Claim(i, _) = op {
                    answers[i] = refused_claim(reason);
                }
            }
            // Another transaction on the item, or a throttled partition: try again.
            Some(
                "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded",
            ) => {
                conflict = true;
                kept.push(op);
            }
            None | Some("None") => kept.push(op),
            Some(code) => {
                return Err(StoreError(format!(
                    "transaction cancelled: {code}: {}",
                    reason.message().unwrap_or_default()
                )));
            }
        }
    }
    if kept.len() == reasons.len() && !conflict {
        return Err(StoreError(
            "transaction cancelled without a reason naming an item".into(),
        ));
    }
    Ok(Remaining {
        ops: kept,
        conflict,
    })
}

/// The answer to a claim its condition refused, told by the item as it was: sent, or leased by
/// another claim.
fn refused_claim(reason: &CancellationReason) -> Claim {
    let sent = reason
        .item()
        .and_then(|item| get_s(item, "state"))
        .is_some_and(|state| state == "sent");
    if sent {
        Claim::AlreadySent
    } else {
        Claim::Leased
    }
}

impl DispatchStore for DynamoStore {
    async fn clicks(&self, keys: &[String]) -> Result<HashMap<String, Click>, StoreError> {
        let mut found = HashMap::new();
        let mut unique: Vec<&String> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(MAX_BATCH_GET) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk
                        .iter()
                        .map(|k| HashMap::from([(PK.to_owned(), s(click_pk(k)))]))
                        .collect(),
                ))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError(e.to_string()))?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(store_err)?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let key =
                        get_s(item, PK).and_then(|pk| pk.strip_prefix("click#").map(str::to_owned));
                    if let (Some(key), Some(clicked_at)) = (key, get_n(item, "clicked_at")) {
                        let click = Click {
                            ctwa_clid: get_s(item, "ctwa_clid"),
                            ad_id: get_s(item, "ad_id"),
                            clicked_at,
                            channel: get_s(item, "channel")
                                .and_then(|c| c.parse().ok())
                                .unwrap_or_default(),
                            destination: get_s(item, "destination")
                                .and_then(|d| d.parse().ok())
                                .unwrap_or_default(),
                        };
                        found.insert(key, click);
                    }
                }
                match out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt >= MAX_ATTEMPTS {
                            return Err(StoreError(format!(
                                "{} click key(s) unread after {attempt} attempts",
                                rest.keys().len()
                            )));
                        }
                        request = rest.clone();
                        pause(attempt).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        // Refused until the transaction says otherwise.
        let mut answers = vec![Claim::Leased; claims.len()];
        let ops: Vec<Op<'_>> = clicks
            .iter()
            .map(Op::Click)
            .chain(claims.iter().enumerate().map(|(i, c)| Op::Claim(i, c)))
            .collect();
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<Op<'_>> = ops.by_ref().take(MAX_TRANSACTION).collect();
            self.transact(chunk, now, &mut answers).await?;
        }
        Ok(answers)
    }

    async fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(marks.len() + report.len());
        for m in marks {
            items.push(mark_item(&self.table, m)?);
        }
        for (key, tally) in report {
            items.push(report_item(&self.table, key, tally)?);
        }
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<TransactWriteItem> = items.by_ref().take(MAX_TRANSACTION).collect();
            self.write_all(chunk).await?;
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
        // Only failure paths release, so one conditional delete per claim is fine here.
        for id in event_ids {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(PK, s(event_pk(id)))
                .condition_expression("#state = :pending")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":pending", s("pending"))
                .send()
                .await;
            if let Err(e) = result {
                let conditional = e
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception());
                if !conditional {
                    return Err(store_err(e));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request_token;

    /// The longest `ClientRequestToken` DynamoDB accepts.
    const MAX_REQUEST_TOKEN: usize = 36;

    #[test]
    fn request_tokens_fit_dynamodb_and_differ() {
        let a = request_token();
        let b = request_token();
        assert!(!a.is_empty() && a.len() <= MAX_REQUEST_TOKEN, "{a}");
        assert_ne!(a, b);
    }
}
