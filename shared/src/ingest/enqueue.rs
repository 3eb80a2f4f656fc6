//! The enqueue step of a verified webhook: its bad parts to the dead-letter queue, its signals
//! to the signal queue (one too large for a queue message kept as a digest), counted and logged
//! by kind, never by content.

use super::{Accepted, Ingest, IngestError, attributes, quarantine_message, signal_messages};
use crate::metrics::{Metrics, names};
use crate::queue::{MAX_MESSAGE_BYTES, MessageSink, OutboundMessage};
use crate::secrets::SecretSource;
use crate::signal::Split;

impl<S: SecretSource, Q: MessageSink, D: MessageSink> Ingest<S, Q, D> {
    /// Queues what `split` holds: [`Self::quarantine_rejected`], then [`Self::queue_signals`];
    /// a queue failure fails the whole webhook, so Meta retries it (the FIFO dedup ids make the
    /// retry harmless).
    pub(super) async fn enqueue(
        &self,
        split: Split,
        metrics: &mut Metrics,
    ) -> Result<Accepted, IngestError> {
        metrics.count(names::STATUSES_IGNORED, split.statuses as u64);
        metrics.count(names::WEBHOOK_ERRORS, split.errors as u64);
        metrics.count(names::CHANGES_IGNORED, split.ignored_changes as u64);
        metrics.count(names::FLOW_FIELDS_DROPPED, split.flow_fields_dropped as u64);
        metrics.count(names::UNREADABLE_PARTS, split.unreadable_parts as u64);
        let quarantined = self.quarantine_rejected(&split, metrics).await?;
        let signals = self.queue_signals(&split, metrics).await?;
        log_accepted(&split, signals, quarantined);
        Ok(Accepted {
            signals,
            quarantined,
        })
    }

    /// Moves every part that became no signal for a reason (not for being ignorable) to the
    /// dead-letter queue, each with its kind, reason and account; returns how many.
    async fn quarantine_rejected(
        &self,
        split: &Split,
        metrics: &mut Metrics,
    ) -> Result<usize, IngestError> {
        let quarantined = split.rejected.len();
        if quarantined == 0 {
            return Ok(0);
        }
        let messages = split
            .rejected
            .iter()
            .map(|r| {
                let mut message = quarantine_message(
                    r.raw.as_bytes(),
                    r.kind.label(),
                    r.reason.label(),
                    &r.reason.to_string(),
                    Some(r.account_id.as_str()).filter(|w| !w.is_empty()),
                );
                if let Some(kind) = r.kind.item_kind() {
                    message = message.with_attribute(attributes::ITEM_KIND, kind.label());
                }
                self.fit(message, metrics)
            })
            .collect();
        self.dead_letters.send_all(messages).await?;
        for r in &split.rejected {
            metrics.count_by(names::BODIES_QUARANTINED, "Reason", r.reason.label(), 1);
            tracing::warn!(reason = r.reason.label(), account_id = %r.account_id, "webhook item quarantined");
        }
        Ok(quarantined)
    }

    /// Queues the signals (counted by channel); returns how many. Signals are bounded by
    /// construction (channels::whatsapp::MAX_TEXT_CHARS and the rest); one that still does
    /// not fit a queue message is kept as a digest, never answered 500 for ever.
    async fn queue_signals(
        &self,
        split: &Split,
        metrics: &mut Metrics,
    ) -> Result<usize, IngestError> {
        let messages: Vec<OutboundMessage> = signal_messages(split)?;
        let (messages, oversized): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .partition(|m| m.size() <= MAX_MESSAGE_BYTES);
        if !oversized.is_empty() {
            let digests = oversized
                .into_iter()
                .map(|m| {
                    let quarantined = quarantine_message(
                        m.body.as_bytes(),
                        "signal",
                        "signal_too_large",
                        "the signal exceeds a queue message",
                        None,
                    );
                    self.fit(quarantined, metrics)
                })
                .collect();
            self.dead_letters.send_all(digests).await?;
        }
        let signals = messages.len();
        if signals > 0 {
            self.signals.send_all(messages).await?;
            for signal in &split.signals {
                metrics.count_by(
                    names::SIGNALS_ENQUEUED,
                    crate::metrics::CHANNEL,
                    signal.channel.as_str(),
                    1,
                );
            }
        }
        Ok(signals)
    }
}

/// Logs what the webhook came to: ids and kinds of its signals (debug), what became no signal
/// by kind (constant names and counts, never webhook text), and the totals.
fn log_accepted(split: &Split, signals: usize, quarantined: usize) {
    for signal in &split.signals {
        tracing::debug!(signal_id = %signal.id, kind = signal.event.kind(), account_id = %signal.account_id, "signal enqueued");
    }
    // An `unknown` kind is a field or event no channel list names (Meta added one, or the app
    // subscribes to more than wacapi reads): ignored all the same, never dead-lettered.
    let unknown = split.ignored_of(crate::signal::UNKNOWN);
    if unknown > 0 {
        tracing::info!(
            unknown,
            "webhook parts of a kind wacapi does not know were ignored"
        );
    }
    tracing::info!(
        signals,
        quarantined,
        statuses = split.statuses,
        unreadable_parts = split.unreadable_parts,
        ignored = ?split.ignored,
        "webhook accepted"
    );
}
