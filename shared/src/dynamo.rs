//! DynamoDB adapter of [`ClickStore`] and [`Ledger`]: one on-demand table keyed by `pk` (string),
//! with a TTL attribute `expires_at` on every item.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | click | `click#<sha256(waba, identity)>` | `ctwa_clid`, `ad_id`, `clicked_at`, `expires_at` |
//! | ledger | `event#<event_id>` | `state` (`pending`/`sent`), `lease_until`, `sent_at`, `fbtrace_id`, `expires_at` |
//!
//! Users are keyed by hash only; no phone number or BSUID is stored.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};

use crate::clicks::{Click, ClickStore, StoreError, user_key};
use crate::ledger::{Claim, Ledger, SentMark};
use crate::signal::UserRef;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The TTL attribute (unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Items per `BatchWriteItem` call (the DynamoDB maximum).
const MAX_BATCH_WRITE: usize = 25;

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

fn store_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync,
{
    StoreError(DisplayErrorContext(e).to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn event_pk(event_id: &str) -> String {
    format!("event#{event_id}")
}

impl ClickStore for DynamoStore {
    async fn record(&self, waba_id: &str, user: &UserRef, click: &Click) -> Result<(), StoreError> {
        for key in user.keys() {
            let expression = if click.ad_id.is_some() {
                "SET ctwa_clid = :clid, clicked_at = :at, expires_at = :exp, ad_id = :ad"
            } else {
                "SET ctwa_clid = :clid, clicked_at = :at, expires_at = :exp REMOVE ad_id"
            };
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(format!("click#{}", user_key(waba_id, key))))
                .update_expression(expression)
                // Keep the newest click: an older one arriving late must not replace it.
                .condition_expression("attribute_not_exists(pk) OR clicked_at <= :at")
                .expression_attribute_values(":clid", s(&click.ctwa_clid))
                .expression_attribute_values(":at", n(click.clicked_at))
                .expression_attribute_values(":exp", n(click.clicked_at + self.click_ttl_seconds));
            let update = match &click.ad_id {
                Some(ad_id) => update.expression_attribute_values(":ad", s(ad_id)),
                None => update,
            };
            match update.send().await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(())
    }

    async fn latest(&self, waba_id: &str, user: &UserRef) -> Result<Option<Click>, StoreError> {
        let mut newest: Option<Click> = None;
        for key in user.keys() {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(PK, s(format!("click#{}", user_key(waba_id, key))))
                .consistent_read(true)
                .send()
                .await
                .map_err(store_err)?;
            let Some(item) = out.item() else { continue };
            let (Some(ctwa_clid), Some(clicked_at)) =
                (get_s(item, "ctwa_clid"), get_n(item, "clicked_at"))
            else {
                continue;
            };
            if newest.as_ref().is_none_or(|c| c.clicked_at < clicked_at) {
                newest = Some(Click {
                    ctwa_clid,
                    ad_id: get_s(item, "ad_id"),
                    clicked_at,
                });
            }
        }
        Ok(newest)
    }
}

impl Ledger for DynamoStore {
    async fn claim(
        &self,
        event_id: &str,
        now: i64,
        lease_until: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(event_pk(event_id)))
            .update_expression("SET #state = :pending, lease_until = :lease, expires_at = :exp")
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :pending AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let state = match failed.item() {
                        Some(item) => get_s(item, "state"),
                        None => self.state_of(event_id).await?,
                    };
                    Ok(if state.as_deref() == Some("sent") {
                        Claim::AlreadySent
                    } else {
                        Claim::Leased
                    })
                }
                _ => Err(store_err(e)),
            },
        }
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> Result<(), StoreError> {
        for chunk in marks.chunks(MAX_BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|m| {
                    let mut item = HashMap::from([
                        (PK.to_owned(), s(event_pk(&m.event_id))),
                        ("state".to_owned(), s("sent")),
                        ("sent_at".to_owned(), n(m.sent_at)),
                        (TTL_ATTRIBUTE.to_owned(), n(m.expires_at)),
                    ]);
                    if let Some(trace) = &m.fbtrace_id {
                        item.insert("fbtrace_id".to_owned(), s(trace));
                    }
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| StoreError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(store_err)?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !requests.is_empty() {
                    if attempt >= 5 {
                        return Err(StoreError(format!(
                            "{} sent mark(s) unprocessed after {attempt} attempts",
                            requests.len()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
            }
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
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

impl DynamoStore {
    async fn state_of(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(event_pk(event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_err)?;
        Ok(out.item().and_then(|i| get_s(i, "state")))
    }
}
