//! SQS FIFO adapter of [`MessageSink`]: `SendMessageBatch` in batches of at most 10 entries and
//! 1 MiB, refused entries retried with backoff, one user's messages kept in order.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tokio::task::JoinSet;

use crate::queue::{MAX_MESSAGE_BYTES, MessageSink, OutboundMessage, QueueError};

/// Entries per `SendMessageBatch` call (the SQS maximum).
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Lanes sent concurrently. Messages are assigned to lanes by group, and each lane sends its
/// batches one after the other, so a group's order survives the concurrency.
const LANES: usize = 4;

/// Attempts per batch before its refused entries fail the call.
const MAX_ATTEMPTS: u32 = 4;

/// A FIFO queue reached through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue by URL.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl MessageSink for SqsQueue {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        if let Some(m) = messages.iter().find(|m| m.size() > MAX_MESSAGE_BYTES) {
            return Err(QueueError::TooLarge { bytes: m.size() });
        }
        let mut lanes: Vec<Vec<OutboundMessage>> = vec![Vec::new(); LANES];
        for m in messages {
            let lane = lane_of(&m.group_id);
            lanes[lane].push(m);
        }
        let mut tasks = JoinSet::new();
        for lane in lanes.into_iter().filter(|l| !l.is_empty()) {
            let queue = self.clone();
            tasks.spawn(async move {
                for batch in batches(lane) {
                    queue.send_batch(batch).await?;
                }
                Ok::<(), QueueError>(())
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| Err(QueueError::Transport(e.to_string())));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl SqsQueue {
    async fn send_batch(&self, batch: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let mut pending: Vec<(usize, OutboundMessage)> = batch.into_iter().enumerate().collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let entries = pending
                .iter()
                .map(|(i, m)| entry(*i, m))
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Transport(DisplayErrorContext(e).to_string()))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }
            // A sender fault (bad entry) will fail again; anything else gets a few more tries.
            let permanent = failed.iter().find(|f| f.sender_fault());
            if let Some(f) = permanent.or(failed.first().filter(|_| attempt >= MAX_ATTEMPTS)) {
                return Err(QueueError::Refused {
                    failed: failed.len(),
                    code: f.code().to_owned(),
                });
            }
            let failed_ids: Vec<&str> = failed.iter().map(|f| f.id()).collect();
            pending.retain(|(i, _)| failed_ids.contains(&i.to_string().as_str()));
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
    }
}

fn entry(index: usize, m: &OutboundMessage) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let build_err = |e: aws_sdk_sqs::error::BuildError| QueueError::Transport(e.to_string());
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&m.body)
        .message_group_id(&m.group_id)
        .message_deduplication_id(&m.dedup_id);
    for (name, value) in &m.attributes {
        entry = entry.message_attributes(
            name,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(build_err)?,
        );
    }
    entry.build().map_err(build_err)
}

/// Splits a lane into `SendMessageBatch` calls of at most 10 entries and 1 MiB in all (SQS API
/// reference, SendMessageBatch: "The maximum allowed individual message size and the maximum
/// total payload size (the sum of the individual lengths of all of the batched messages) are
/// both 1 MiB"), each message counted with its attributes.
fn batches(lane: Vec<OutboundMessage>) -> Vec<Vec<OutboundMessage>> {
    let mut out: Vec<Vec<OutboundMessage>> = Vec::new();
    let mut bytes = 0;
    for m in lane {
        let size = m.size();
        match out.last_mut() {
            Some(batch) if batch.len() < MAX_BATCH_ENTRIES && bytes + size <= MAX_MESSAGE_BYTES => {
                bytes += size;
                batch.push(m);
            }
            _ => {
                bytes = size;
                out.push(vec![m]);
            }
        }
    }
    out
}

fn lane_of(group_id: &str) -> usize {
    group_id
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % LANES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(group: &str, bytes: usize) -> OutboundMessage {
        OutboundMessage::new("x".repeat(bytes), group.into(), "d".into())
    }

    #[test]
    fn batches_respect_count_and_size() {
        let lane: Vec<_> = (0..25).map(|_| msg("g", 10)).collect();
        let sizes: Vec<usize> = batches(lane).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);

        let lane: Vec<_> = (0..3).map(|_| msg("g", 400 * 1024)).collect();
        let sizes: Vec<usize> = batches(lane).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn a_group_always_lands_in_one_lane() {
        assert_eq!(lane_of("abc"), lane_of("abc"));
        assert!(lane_of("abc") < LANES);
    }
}
