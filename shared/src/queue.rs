//! The queue port: FIFO messages out of ingest (signals, dead letters), with an in-memory adapter.
//! The SQS adapter lives in [`crate::aws::sqs`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

/// The SQS maximum message size (body plus attributes), 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// One message for a FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The message body.
    pub body: String,
    /// FIFO message group: messages of one group are delivered in order.
    pub group_id: String,
    /// FIFO deduplication id: a repeat inside the 5-minute window is dropped by the queue.
    pub dedup_id: String,
    /// String message attributes (name, value).
    pub attributes: Vec<(String, String)>,
}

impl OutboundMessage {
    /// A message without attributes.
    pub fn new(body: String, group_id: String, dedup_id: String) -> Self {
        Self {
            body,
            group_id,
            dedup_id,
            attributes: Vec::new(),
        }
    }

    /// Adds a string attribute.
    pub fn with_attribute(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.push((name.to_owned(), value.into()));
        self
    }

    /// Size as SQS counts it: body plus attribute names, types and values.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(n, v)| n.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

/// Why messages could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A message is larger than a queue message may be.
    #[error("message of {bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte queue limit")]
    TooLarge {
        /// The message size.
        bytes: usize,
    },
    /// The queue refused some entries, even after retries.
    #[error("queue refused {failed} message(s): {code}")]
    Refused {
        /// How many were refused.
        failed: usize,
        /// The first error code returned.
        code: String,
    },
    /// The call itself failed (network, credentials, missing queue).
    #[error("queue call failed: {0}")]
    Transport(String),
    /// The queue is at its bound (`wacapi serve`'s backlog, or the disk under it): nothing was
    /// queued, and the sender should retry later (HTTP 503 with `Retry-After`).
    #[error("queue full: {0}")]
    Full(String),
}

/// Somewhere FIFO messages can be sent.
pub trait MessageSink: Send + Sync {
    /// Sends every message, in order per group, or fails. Entries the queue refuses are retried
    /// by the implementation; an `Err` means at least one message may not have been queued, so
    /// the caller must not acknowledge the input (a retry is safe: the queue deduplicates).
    fn send_all(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// An in-memory FIFO queue with SQS-like deduplication (forever, not 5 minutes), for the CLI and
/// unit tests.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<MemoryQueueState>,
}

#[derive(Debug, Default)]
struct MemoryQueueState {
    messages: Vec<OutboundMessage>,
    seen: HashSet<String>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every queued message, oldest first.
    pub fn drain(&self) -> Vec<OutboundMessage> {
        match self.inner.lock() {
            Ok(mut state) => std::mem::take(&mut state.messages),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().messages),
        }
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|s| s.messages.len()).unwrap_or(0)
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MessageSink for MemoryQueue {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        if let Some(m) = messages.iter().find(|m| m.size() > MAX_MESSAGE_BYTES) {
            return Err(QueueError::TooLarge { bytes: m.size() });
        }
        let mut state = self
            .inner
            .lock()
            .map_err(|_| QueueError::Transport("memory queue lock poisoned".into()))?;
        for m in messages {
            if state.seen.insert(m.dedup_id.clone()) {
                state.messages.push(m);
            }
        }
        Ok(())
    }
}

impl<T: MessageSink> MessageSink for &T {
    fn send_all(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).send_all(messages)
    }
}

impl<T: MessageSink> MessageSink for std::sync::Arc<T> {
    fn send_all(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).send_all(messages)
    }
}
