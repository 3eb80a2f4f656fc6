//! Messenger (`object = page`) and Instagram Direct (`object = instagram`) webhooks into
//! signals. Both platforms send the same shape (Messenger Platform › Webhooks, the
//! `messages`, `messaging_postbacks` and `messaging_referrals` events, updated Jul 2025 – Feb
//! 2026): `entry[].id` is the Page id (the Instagram professional account id), and each
//! `entry[].messaging[]` item comes from `sender.id`, the page-scoped (Instagram-scoped) user id,
//! at `timestamp` in **milliseconds**, with one of:
//!
//! - `message` (`mid`, `text`, `quick_reply.payload`, `attachments`, and `referral` when the
//!   person wrote after an ad click), echoes (`is_echo`) of the business's own messages ignored;
//! - `postback` (`mid`, `title`, `payload`, and `referral` when Get Started opened a new thread
//!   from an ad);
//! - `referral` alone (`messaging_referrals`: an existing thread reopened from an ad), which has no
//!   message id: its id is derived from the sender and the timestamp.
//!
//! An ad referral is `source: "ADS"` with an `ad_id` (in Europe and Japan `source` may be
//! absent: an `ad_id` alone counts). Other referrals (m.me links, QR codes) are not ad clicks.
//! Ad creative (`ads_context_data`: titles, photo and video URLs), message text beyond what rules
//! read, attachments' URLs and titles are not carried further.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::channels::Channel;
use crate::conversion::hashing::sha256_hex;
use crate::lenient::{self, RawItem};
use crate::redact::safe_json_error;
use crate::signal::{
    AdReferral, RawKind, RejectReason, Rejected, SIGNAL_VERSION, Signal, SignalEvent, Split,
    UserRef,
};

/// The `object` of every Messenger webhook.
pub const PAGE_OBJECT: &str = "page";

/// Text bodies are cut to this many characters (Messenger's own limit is 2,000; Instagram's
/// 1,000): rules read only the start of a text, and a signal must fit a queue message.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(deserialize_with = "lenient::required_string")]
    id: String,
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    messaging: Vec<RawItem<'a>>,
    /// Items of threads another app controls (handover protocol): the same shape, and the same
    /// conversions (a CRM inbox is often the primary receiver and wacapi the secondary).
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    standby: Vec<RawItem<'a>>,
    /// `{field, value}` notifications: the dashboard's test button and some references write a
    /// messaging item this way; other fields (feed, comments...) are counted, not processed.
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    changes: Vec<RawItem<'a>>,
}

/// One `changes[]` item.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default, deserialize_with = "lenient::string")]
    field: Option<String>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
}

/// The webhook fields whose `value` is a messaging item (Messenger names the referral field
/// `messaging_referrals`, Instagram `messaging_referral`).
const MESSAGING_FIELDS: [&str; 5] = [
    "messages",
    "messaging_postbacks",
    "messaging_referrals",
    "messaging_referral",
    "standby",
];

/// One `messaging[]` item.
#[derive(Deserialize)]
struct Messaging {
    #[serde(default, deserialize_with = "lenient::object")]
    sender: Option<Party>,
    #[serde(default, deserialize_with = "lenient::object")]
    recipient: Option<Party>,
    #[serde(deserialize_with = "lenient::unix_seconds")]
    timestamp: i64,
    #[serde(default, deserialize_with = "lenient::object")]
    message: Option<MessagePayload>,
    #[serde(default, deserialize_with = "lenient::object")]
    postback: Option<Postback>,
    #[serde(default, deserialize_with = "lenient::object")]
    referral: Option<Referral>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct MessagePayload {
    #[serde(default, deserialize_with = "lenient::string")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    text: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    quick_reply: Option<QuickReply>,
    #[serde(default, deserialize_with = "lenient::items")]
    attachments: Vec<Attachment>,
    #[serde(default, deserialize_with = "lenient::object")]
    referral: Option<Referral>,
    #[serde(default, deserialize_with = "lenient::flag")]
    is_echo: bool,
    /// Instagram reports an unsent message with its `mid` and this flag.
    #[serde(default, deserialize_with = "lenient::flag")]
    is_deleted: bool,
}

#[derive(Deserialize)]
struct QuickReply {
    #[serde(default, deserialize_with = "lenient::string")]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Postback {
    #[serde(default, deserialize_with = "lenient::string")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    payload: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    referral: Option<Referral>,
}

#[derive(Deserialize)]
struct Referral {
    #[serde(default, deserialize_with = "lenient::string")]
    source: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    ad_id: Option<String>,
}

impl Referral {
    /// The ad this referral comes from: `source: "ADS"` with an `ad_id`, or an `ad_id` without a
    /// source (Europe and Japan leave it out). A link or QR code referral is no ad.
    fn ad(&self) -> Option<AdReferral> {
        let ad_id = self.ad_id.as_deref().filter(|a| !a.trim().is_empty())?;
        let from_ads = self
            .source
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("ADS"));
        from_ads.then(|| AdReferral {
            ctwa_clid: None,
            source_id: Some(ad_id.to_owned()),
            source_type: Some("ad".to_owned()),
        })
    }
}

/// Splits the entries of a Messenger or Instagram webhook into signals, in webhook order.
pub fn split_entries(channel: Channel, entries: &[RawItem<'_>]) -> Split {
    let mut out = Split::default();
    for raw_entry in entries {
        let entry: Entry<'_> = match serde_json::from_str(raw_entry.get()) {
            Ok(entry) => entry,
            Err(e) => {
                out.rejected.push(Rejected {
                    account_id: String::new(),
                    reason: RejectReason::BadEntry(safe_json_error(&e)),
                    kind: RawKind::Envelope,
                    raw: envelope(channel, raw_entry.get()),
                });
                continue;
            }
        };
        let mut items: Vec<&str> = entry
            .messaging
            .iter()
            .chain(&entry.standby)
            .map(RawItem::get)
            .collect();
        for raw in &entry.changes {
            match serde_json::from_str::<Change<'_>>(raw.get()) {
                Ok(Change {
                    field: Some(field),
                    value: Some(value),
                }) if MESSAGING_FIELDS.contains(&field.as_str()) => items.push(value.get()),
                _ => out.ignored_changes += 1,
            }
        }
        for raw in items {
            match serde_json::from_str::<Messaging>(raw) {
                Ok(item) => match item_signal(channel, &entry.id, item) {
                    Some(signal) => out.signals.push(signal),
                    None => out.ignored_changes += 1,
                },
                Err(e) => out.rejected.push(Rejected {
                    account_id: entry.id.clone(),
                    reason: RejectReason::BadMessage(safe_json_error(&e)),
                    kind: RawKind::Envelope,
                    raw: envelope(
                        channel,
                        &format!(
                            r#"{{"id":{},"messaging":[{}]}}"#,
                            serde_json::Value::from(entry.id.as_str()),
                            raw
                        ),
                    ),
                }),
            }
        }
    }
    out
}

/// An envelope of `channel` holding one raw entry (what a quarantine keeps, so a redrive re-reads
/// it as a webhook).
fn envelope(channel: Channel, raw_entry: &str) -> String {
    let object = match channel {
        Channel::Instagram => super::instagram::INSTAGRAM_OBJECT,
        _ => PAGE_OBJECT,
    };
    format!(r#"{{"object":"{object}","entry":[{raw_entry}]}}"#)
}

/// The signal of one `messaging[]` item; `None` for what is no conversation moment (echoes of
/// the business's own messages, deliveries, reads, reactions without a referral, items without
/// a sender).
fn item_signal(channel: Channel, entry_id: &str, item: Messaging) -> Option<Signal> {
    let sender = item.sender.and_then(|p| p.id)?;
    // The recipient is the Page (the Instagram account); the entry id names it too.
    let account_id = item
        .recipient
        .and_then(|p| p.id)
        .filter(|id| id == entry_id)
        .unwrap_or_else(|| entry_id.to_owned());
    let (id, event, referral) = if let Some(message) = item.message {
        if message.is_echo || message.is_deleted {
            return None;
        }
        let referral = message.referral.as_ref().and_then(Referral::ad);
        let event = match (
            &message.quick_reply,
            &message.text,
            message.attachments.first(),
        ) {
            (
                Some(QuickReply {
                    payload: Some(payload),
                }),
                _,
                _,
            ) => SignalEvent::QuickReply {
                payload: payload.clone(),
            },
            (_, Some(text), _) => SignalEvent::Text {
                body: cut(text, MAX_TEXT_CHARS),
            },
            (_, None, Some(attachment)) => SignalEvent::Other {
                message_type: attachment
                    .kind
                    .clone()
                    .unwrap_or_else(|| "attachment".to_owned()),
            },
            _ => SignalEvent::Other {
                message_type: "unknown".to_owned(),
            },
        };
        (message.mid, event, referral)
    } else if let Some(postback) = item.postback {
        let referral = postback.referral.as_ref().and_then(Referral::ad);
        let event = SignalEvent::Postback {
            payload: postback.payload.unwrap_or_default(),
        };
        (postback.mid, event, referral)
    } else if let Some(referral) = item.referral {
        (None, SignalEvent::Referral, Some(referral.ad()?))
    } else {
        return None;
    };
    // A referral has no message id: sender and time name it, the same on every redelivery.
    let id = id.filter(|m| !m.is_empty()).unwrap_or_else(|| {
        let key = format!("{}\u{1f}{sender}\u{1f}{}", channel.as_str(), item.timestamp);
        format!("referral.{}", &sha256_hex(key.as_bytes())[..32])
    });
    Some(Signal {
        v: SIGNAL_VERSION,
        id,
        channel,
        account_id,
        phone_number_id: None,
        timestamp: item.timestamp,
        user: UserRef {
            scoped_id: Some(sender),
            ..UserRef::default()
        },
        referral,
        event,
    })
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::split;

    fn page(items: &str) -> Vec<u8> {
        format!(r#"{{"object":"page","entry":[{{"id":"7","time":1,"messaging":[{items}]}}]}}"#)
            .into_bytes()
    }

    #[test]
    fn milliseconds_become_seconds_and_mids_name_messages() {
        let split = split(&page(
            r#"{"sender":{"id":"42"},"recipient":{"id":"7"},"timestamp":1750096400999,"message":{"mid":"m_1","text":"hi"}}"#,
        ))
        .unwrap();
        let signal = &split.signals[0];
        assert_eq!(signal.timestamp, 1_750_096_400);
        assert_eq!(signal.id, "m_1");
        assert_eq!(
            (signal.channel, signal.account_id.as_str()),
            (Channel::Messenger, "7")
        );
        assert_eq!(signal.user.scoped_id.as_deref(), Some("42"));
    }

    #[test]
    fn a_bare_referral_gets_the_same_id_on_every_delivery_and_one_per_click() {
        let item = |t: u64| {
            format!(
                r#"{{"sender":{{"id":"42"}},"recipient":{{"id":"7"}},"timestamp":{t},"referral":{{"ad_id":"9","source":"ADS","type":"OPEN_THREAD"}}}}"#
            )
        };
        let id = |t: u64| split(&page(&item(t))).unwrap().signals[0].id.clone();
        assert_eq!(id(1_750_096_400_000), id(1_750_096_400_000));
        assert_ne!(id(1_750_096_400_000), id(1_750_096_500_000));
        assert!(id(1_750_096_400_000).starts_with("referral."));
    }

    #[test]
    fn only_ad_referrals_are_clicks_and_europe_may_leave_the_source_out() {
        let referral = |r: &str| {
            let item = format!(
                r#"{{"sender":{{"id":"42"}},"recipient":{{"id":"7"}},"timestamp":1750096400000,"postback":{{"mid":"p","payload":"GET_STARTED","referral":{r}}}}}"#
            );
            split(&page(&item)).unwrap().signals[0].referral.clone()
        };
        let ad = referral(r#"{"ad_id":"9","source":"ADS","type":"OPEN_THREAD"}"#).unwrap();
        assert_eq!(ad.source_id.as_deref(), Some("9"));
        assert!(ad.ctwa_clid.is_none());
        assert!(referral(r#"{"ad_id":"9","type":"OPEN_THREAD"}"#).is_some());
        assert!(referral(r#"{"ref":"x","source":"SHORTLINK","type":"OPEN_THREAD"}"#).is_none());
        assert!(referral(r#"{"ad_id":"","source":"ADS"}"#).is_none());
    }

    #[test]
    fn echoes_unsent_messages_and_people_without_an_id_are_no_conversions() {
        let split = split(&page(
            r#"{"sender":{"id":"7"},"recipient":{"id":"42"},"timestamp":1750096400000,"message":{"mid":"e","is_echo":true,"text":"thanks"}},
               {"sender":{"id":"42"},"recipient":{"id":"7"},"timestamp":1750096400000,"message":{"mid":"d","is_deleted":true}},
               {"sender":{"user_ref":"r"},"recipient":{"id":"7"},"timestamp":1750096400000,"postback":{"mid":"u","payload":"GET_STARTED"}}"#,
        ))
        .unwrap();
        assert!(split.signals.is_empty());
        assert!(split.rejected.is_empty());
        assert_eq!(split.ignored_changes, 3);
    }

    #[test]
    fn a_quick_reply_wins_over_its_text_and_long_texts_are_cut() {
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        let split = split(&page(&format!(
            r#"{{"sender":{{"id":"42"}},"recipient":{{"id":"7"}},"timestamp":1750096400000,"message":{{"mid":"q","text":"Book","quick_reply":{{"payload":"BOOK"}}}}}},
               {{"sender":{{"id":"42"}},"recipient":{{"id":"7"}},"timestamp":1750096400000,"message":{{"mid":"t","text":"{long}"}}}}"#
        )))
        .unwrap();
        assert_eq!(
            split.signals[0].event,
            SignalEvent::QuickReply {
                payload: "BOOK".into()
            }
        );
        let SignalEvent::Text { body } = &split.signals[1].event else {
            panic!("a text");
        };
        assert_eq!(body.chars().count(), MAX_TEXT_CHARS);
    }
}
