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
//! Every other item kind Meta documents (deliveries, reads, reactions, edits, opt-ins, handovers,
//! policy notices, feedback, carts: [`IGNORED_ITEM_KINDS`]) and every other field
//! ([`IGNORED_FIELDS`]) is counted by name and needs nothing: an item's kind is decided before
//! anything is required of it, so a delivery without a `timestamp` (as Meta sends them) is
//! never dead-lettered. Only a conversation item that lacks what a signal needs is.
//!
//! An ad referral is `source: "ADS"` with an `ad_id` (in Europe and Japan `source` may be
//! absent: an `ad_id` alone counts). Other referrals (m.me links, QR codes) are not ad clicks.
//! Ad creative (`ads_context_data`: titles, photo and video URLs), message text beyond what rules
//! read, attachments' URLs and titles are not carried further.
//!
//! The envelope around the entries is every channel's ([`crate::channels::envelope`]); this
//! file reads the entries, their items and their changes.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::channels::envelope::one_entry;
use crate::channels::instagram::INSTAGRAM_OBJECT;
use crate::lenient::{self, RawItem};
use crate::model::Channel;
use crate::redact::safe_json_error;
use crate::signal::{
    AdReferral, RawKind, RejectReason, Rejected, SIGNAL_VERSION, Signal, SignalEvent, Split,
    UNKNOWN, UserRef,
};
use crate::values::hashing::sha256_hex;

/// The `object` of every Messenger webhook.
pub const PAGE_OBJECT: &str = "page";

/// Text bodies are cut to this many characters (Messenger's own limit is 2,000; Instagram's
/// 1,000): rules read only the start of a text, and a signal must fit a queue message.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Deserialize)]
struct Entry<'a> {
    /// The Page (Instagram account): required of an entry that holds a conversation item, which
    /// is that account's; an entry of ignorable items only may come without it (Meta's own
    /// `messaging_feedback` example has none).
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
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
    /// Messenger calling (`calls[]` on the entry, no sender): counted by name.
    #[serde(default, deserialize_with = "lenient::items")]
    calls: Vec<IgnoredAny>,
    /// Instagram Login writes a notification's `field` and `value` on the entry itself (no
    /// `changes[]`): read as one change.
    #[serde(default, deserialize_with = "lenient::string")]
    field: Option<String>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
}

/// What an entry without an account id is refused with: the error the id's absence (or odd
/// shape) makes, as an entry that requires it reports it.
#[derive(Deserialize)]
struct EntryId {
    #[serde(rename = "id", deserialize_with = "lenient::required_string")]
    _id: String,
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
pub const MESSAGING_FIELDS: [&str; 5] = [
    "messages",
    "messaging_postbacks",
    "messaging_referrals",
    "messaging_referral",
    "standby",
];

/// Every other Messenger and Instagram webhook field Meta documents, ignored by name when it
/// comes as a `{field, value}` change (or, for Instagram Login, on the entry): receipts,
/// reactions, edits, echoes, opt-ins, handovers, policy notices, feedback, carts, calls,
/// labels, marketing-message notices, comments, mentions, insights. None is a conversation
/// moment of a user's. A field not listed is counted as [`UNKNOWN`] and ignored all the same.
// Sources (docs/meta-reference.md has the table): Meta Webhooks for Messenger Platform, field
// list (May 5, 2026); Messenger Calling webhooks (Mar 23, 2026); Custom Labels (inbox_labels,
// Mar 18, 2026); group_feed (Mar 18, 2026); Marketing Messages API for Messenger (Jun 30, 2026);
// Instagram webhook fields (Oct 28, 2026); Instagram webhook examples (Nov 24, 2025); Graph API
// webhooks reference, instagram (messaging_handover). `feed` is the Page's own subscription
// (Graph API Page webhooks), the most common one beside Messenger's.
pub const IGNORED_FIELDS: &[&str] = &[
    "calls",
    "comments",
    "feed",
    "group_feed",
    "inbox_labels",
    "live_comments",
    "marketing_message_clicks",
    "marketing_message_deliveries",
    "marketing_message_echoes",
    "marketing_message_reads",
    "mentions",
    "message_deliveries",
    "message_echoes",
    "message_edit",
    "message_edits",
    "message_reactions",
    "message_reads",
    "messaging_account_linking",
    "messaging_customer_information",
    "messaging_feedback",
    "messaging_game_plays",
    "messaging_handover",
    "messaging_handovers",
    "messaging_optins",
    "messaging_policy_enforcement",
    "messaging_seen",
    "messenger_template_status_update",
    "response_feedback",
    "send_cart",
    "story_insights",
];

/// The event keys of the `messaging[]` items Meta documents that are no conversation moment,
/// ignored by name: delivery and read receipts (Instagram's `messaging_seen` is a `read`),
/// reactions, edits, opt-ins, account linking, game plays, thread handovers and app roles,
/// policy enforcement, response and customer feedback, carts (`order`). Such an item needs
/// nothing wacapi reads (Meta sends deliveries without a `timestamp`, app roles and policy
/// notices without a `sender`): it is never dead-lettered for a missing field. An item of no
/// listed kind is counted as [`UNKNOWN`] and ignored all the same.
// Sources: each event's reference under Messenger Platform › Webhooks › Webhook events
// (message_deliveries and message_reads Jun 21, 2022; message_reactions Oct 29, 2019;
// message_edits Apr 9, 2024; messaging_optins Jun 20, 2023; messaging_account_linking Nov 16,
// 2017; messaging_game_plays Aug 26, 2022; messaging_handovers Sep 14, 2021;
// messaging_policy_enforcement; response_feedback Oct 8, 2024; send_cart Jan 23, 2024);
// Customer Feedback Template (messaging_feedback, Mar 23, 2026); Instagram Messaging webhooks
// (Jun 26, 2026); Instagram Conversation Control APIs (Jun 21, 2026); Graph API webhooks
// reference, instagram (pass_thread_metadata).
pub const IGNORED_ITEM_KINDS: &[&str] = &[
    "account_linking",
    "app_roles",
    "delivery",
    "game_play",
    "message_edit",
    "messaging_feedback",
    "optin",
    "order",
    "pass_thread_control",
    "pass_thread_metadata",
    "policy_enforcement",
    "reaction",
    "read",
    "request_thread_control",
    "response_feedback",
    "take_thread_control",
];

/// [`Split::ignored`] name of echoes of the business's own messages (`message.is_echo`).
pub const MESSAGE_ECHOES: &str = "message_echoes";
/// [`Split::ignored`] name of messages the user unsent (Instagram's `message.is_deleted`).
pub const DELETED_MESSAGES: &str = "deleted_messages";
/// [`Split::ignored`] name of messages and postbacks with no user id (`sender.user_ref` of a
/// checkbox plugin or the dashboard's test, or no sender at all): nobody to attribute.
pub const NO_SENDER: &str = "no_sender";
/// [`Split::ignored`] name of bare referrals that are no ad's (m.me and ig.me links, QR codes).
pub const REFERRALS_NOT_FROM_ADS: &str = "referrals_not_from_ads";

/// The name a field is counted under: its own when listed, else [`UNKNOWN`].
fn field_kind(field: &str) -> &'static str {
    IGNORED_FIELDS
        .iter()
        .chain(&MESSAGING_FIELDS)
        .find(|f| **f == field)
        .copied()
        .unwrap_or(UNKNOWN)
}

/// What a `messaging[]` item is, decided from its keys before anything is required of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    /// A `message`, `postback` or `referral` of a user's: read in full, and it needs a sender
    /// and a time.
    Conversation,
    /// Anything else, by the name it is counted under.
    Ignored(&'static str),
}

/// An item's keys, as far as its kind goes; every field is read leniently, so any object reads.
struct ItemProbe(ItemKind);

/// The flags of a `message` that make it no user's message.
#[derive(Deserialize)]
struct MessageFlags {
    #[serde(default, deserialize_with = "lenient::flag")]
    is_echo: bool,
    #[serde(default, deserialize_with = "lenient::flag")]
    is_deleted: bool,
}

/// A value read as an object or nothing (see [`lenient::object`]).
struct MaybeObject<T>(Option<T>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for MaybeObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::object(d).map(MaybeObject)
    }
}

impl<'de> Deserialize<'de> for ItemProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ProbeVisitor;
        impl<'de> serde::de::Visitor<'de> for ProbeVisitor {
            type Value = ItemProbe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a messaging item")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ItemProbe, A::Error> {
                let mut message: Option<MessageFlags> = None;
                let (mut postback, mut referral) = (false, false);
                let mut listed: Option<&'static str> = None;
                let mut field: Option<&'static str> = None;
                while let Some(key) = map.next_key::<ItemKey>()? {
                    match key {
                        ItemKey::Message => message = map.next_value::<MaybeObject<_>>()?.0,
                        ItemKey::Postback => {
                            postback = map.next_value::<MaybeObject<IgnoredAny>>()?.0.is_some()
                        }
                        ItemKey::Referral => {
                            referral = map.next_value::<MaybeObject<IgnoredAny>>()?.0.is_some()
                        }
                        // group_feed items name their field in the item, beside a `message`
                        // that is the post's text: a listed field decides the kind.
                        ItemKey::Field => {
                            let name = map.next_value::<MaybeString>()?.0;
                            field = name
                                .and_then(|n| IGNORED_FIELDS.iter().find(|f| **f == n).copied());
                        }
                        ItemKey::Listed(kind) => {
                            listed = listed.or(Some(kind));
                            map.next_value::<IgnoredAny>()?;
                        }
                        ItemKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if let Some(field) = field {
                    return Ok(ItemProbe(ItemKind::Ignored(field)));
                }
                // The order wacapi has always read an item in: message, postback, referral.
                let kind = match message {
                    Some(MessageFlags { is_echo: true, .. }) => ItemKind::Ignored(MESSAGE_ECHOES),
                    Some(MessageFlags {
                        is_deleted: true, ..
                    }) => ItemKind::Ignored(DELETED_MESSAGES),
                    Some(_) => ItemKind::Conversation,
                    None if postback || referral => ItemKind::Conversation,
                    None => ItemKind::Ignored(listed.unwrap_or(UNKNOWN)),
                };
                Ok(ItemProbe(kind))
            }
        }
        d.deserialize_map(ProbeVisitor)
    }
}

/// A key of a messaging item, matched without copying it.
enum ItemKey {
    Message,
    Postback,
    Referral,
    Field,
    /// One of [`IGNORED_ITEM_KINDS`].
    Listed(&'static str),
    Other,
}

impl<'de> Deserialize<'de> for ItemKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = ItemKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<ItemKey, E> {
                Ok(match key {
                    "message" => ItemKey::Message,
                    "postback" => ItemKey::Postback,
                    "referral" => ItemKey::Referral,
                    "field" => ItemKey::Field,
                    other => IGNORED_ITEM_KINDS
                        .iter()
                        .find(|k| **k == other)
                        .map_or(ItemKey::Other, |k| ItemKey::Listed(k)),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// A string value, or nothing (see [`lenient::string`]).
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::string(d).map(MaybeString)
    }
}

/// The kind of a raw item; `None` when it is not an object (then the full read says why).
fn kind_of(raw: &str) -> Option<ItemKind> {
    // An item that cannot be read as it came is probed in what can be read of it (its
    // unreadable parts are counted when it is read in full).
    lenient::read_salvaged::<ItemProbe>(raw)
        .ok()
        .map(|(p, _)| p.0)
}

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

/// Splits the entries of a Messenger or Instagram webhook into signals, in webhook order (the
/// envelope was read by [`crate::channels::split`]).
///
/// Each item's kind is decided first (its `ItemKind`): a conversation item is read in full and
/// must have what a signal needs (a malformed one is rejected, to be quarantined); any other
/// kind is counted by name and needs nothing, so a receipt without a `timestamp` or a policy
/// notice without a `sender` is never dead-lettered.
pub fn split_entries(channel: Channel, entries: &[RawItem<'_>]) -> Split {
    let mut out = Split::default();
    for raw_entry in entries {
        let mut salvaged = String::new();
        let entry = match read_entry(raw_entry.get(), &mut salvaged, &mut out) {
            Ok(entry) => entry,
            Err(e) => {
                out.rejected
                    .push(bad_entry(channel, raw_entry.get(), safe_json_error(&e)));
                continue;
            }
        };
        let EntryItems { items, ignored } = entry_items(&entry);
        let Some(account_id) = entry.id.as_deref() else {
            without_account(channel, raw_entry.get(), items, ignored, &mut out);
            continue;
        };
        ignored.into_iter().for_each(|kind| out.ignore(kind));
        for (raw, kind) in items {
            match kind {
                ItemKind::Ignored(name) => out.ignore(name),
                ItemKind::Conversation => conversation(channel, account_id, raw, &mut out),
            }
        }
    }
    out
}

/// Reads one entry; an entry that cannot be read as it came (a key given twice, a string that is
/// no text) is read from what can be read of it, kept in `salvaged`, its unreadable parts counted.
/// The error is the entry's as it came.
fn read_entry<'a>(
    raw_entry: &'a str,
    salvaged: &'a mut String,
    out: &mut Split,
) -> Result<Entry<'a>, serde_json::Error> {
    let e = match serde_json::from_str(raw_entry) {
        Ok(entry) => return Ok(entry),
        Err(e) => e,
    };
    let (text, dropped) = lenient::salvage(raw_entry).unwrap_or_default();
    *salvaged = text;
    let salvaged: &'a str = salvaged;
    if salvaged.is_empty() {
        return Err(e);
    }
    match serde_json::from_str::<Entry<'_>>(salvaged) {
        Ok(entry) => {
            out.unreadable_parts += dropped;
            Ok(entry)
        }
        Err(_) => Err(e),
    }
}

/// What one entry holds: its items with their kinds, in order (`messaging[]`, `standby[]`, then
/// the messaging items written as changes), and the names of what it holds beside them to count.
struct EntryItems<'a> {
    /// Each item's raw text and kind.
    items: Vec<(&'a str, ItemKind)>,
    /// The names to count of the changes and calls that are no items.
    ignored: Vec<&'static str>,
}

/// The items of an entry and what is counted beside them: the `{field, value}` changes (and
/// Instagram Login's `field`/`value` on the entry, one more change) whose field is a messaging
/// field are items; other fields and Messenger calls are counted by name.
fn entry_items<'a>(entry: &'a Entry<'a>) -> EntryItems<'a> {
    let mut items: Vec<(&str, ItemKind)> = entry
        .messaging
        .iter()
        .chain(&entry.standby)
        .map(|raw| {
            (
                raw.get(),
                kind_of(raw.get()).unwrap_or(ItemKind::Conversation),
            )
        })
        .collect();
    let mut ignored: Vec<&'static str> = Vec::new();
    let changes = entry.changes.iter().map(|raw| {
        serde_json::from_str::<Change<'_>>(raw.get()).map_or((None, None), |c| (c.field, c.value))
    });
    // Instagram Login's `field`/`value` on the entry is one more change.
    let on_entry = (entry.field.is_some() || entry.value.is_some())
        .then(|| (entry.field.clone(), entry.value));
    for (field, value) in changes.chain(on_entry) {
        match (field, value) {
            (Some(field), Some(value)) if MESSAGING_FIELDS.contains(&field.as_str()) => {
                let kind = kind_of(value.get()).unwrap_or(ItemKind::Conversation);
                items.push((value.get(), kind));
            }
            (Some(field), _) => ignored.push(field_kind(&field)),
            (None, _) => ignored.push(UNKNOWN),
        }
    }
    ignored.extend(entry.calls.iter().map(|_| "calls"));
    EntryItems { items, ignored }
}

/// An entry without an account id: nothing in it can be a signal. Only an entry with a
/// conversation item in it is refused (for the missing id); the rest is counted.
fn without_account(
    channel: Channel,
    raw_entry: &str,
    items: Vec<(&str, ItemKind)>,
    mut ignored: Vec<&'static str>,
    out: &mut Split,
) {
    if items
        .iter()
        .any(|(_, kind)| *kind == ItemKind::Conversation)
    {
        let detail = match serde_json::from_str::<EntryId>(raw_entry) {
            Err(e) => safe_json_error(&e),
            // Not reached (the lenient id read nothing, so the strict read fails), but a
            // conversation item is never dropped unaccounted for.
            Ok(_) => "entry has no account id".to_owned(),
        };
        out.rejected.push(bad_entry(channel, raw_entry, detail));
        return;
    }
    ignored.extend(items.iter().filter_map(|(_, kind)| match kind {
        ItemKind::Ignored(name) => Some(*name),
        ItemKind::Conversation => None,
    }));
    ignored.into_iter().for_each(|kind| out.ignore(kind));
}

/// Reads one conversation item of `account_id`'s entry in full: its signal, the name it is
/// counted under when it is no conversation moment after all, or (malformed) a rejection that
/// keeps it in an entry of its own.
fn conversation(channel: Channel, account_id: &str, raw: &str, out: &mut Split) {
    match lenient::read_salvaged::<Messaging>(raw) {
        Ok((item, dropped)) => {
            out.unreadable_parts += dropped;
            match item_signal(channel, account_id, item) {
                Ok(signal) => out.signals.push(signal),
                Err(name) => out.ignore(name),
            }
        }
        Err(e) => out.rejected.push(Rejected {
            account_id: account_id.to_owned(),
            reason: RejectReason::BadMessage(safe_json_error(&e)),
            kind: RawKind::Envelope,
            raw: envelope(
                channel,
                &format!(
                    r#"{{"id":{},"messaging":[{}]}}"#,
                    serde_json::Value::from(account_id),
                    raw
                ),
            ),
        }),
    }
}

/// An entry that is not one (not an object, or an account id missing where one is needed).
fn bad_entry(channel: Channel, raw_entry: &str, detail: String) -> Rejected {
    Rejected {
        account_id: String::new(),
        reason: RejectReason::BadEntry(detail),
        kind: RawKind::Envelope,
        raw: envelope(channel, raw_entry),
    }
}

/// An envelope of `channel` holding one raw entry (what a quarantine keeps, so a redrive re-reads
/// it as a webhook).
fn envelope(channel: Channel, raw_entry: &str) -> String {
    let object = match channel {
        Channel::Instagram => INSTAGRAM_OBJECT,
        _ => PAGE_OBJECT,
    };
    one_entry(object, raw_entry)
}

/// The signal of one conversation item, or the name it is counted under when it is no
/// conversation moment after all (no user id, a referral that is no ad's).
fn item_signal(channel: Channel, entry_id: &str, item: Messaging) -> Result<Signal, &'static str> {
    let sender = item.sender.and_then(|p| p.id).ok_or(NO_SENDER)?;
    // The recipient is the Page (the Instagram account); the entry id names it too.
    let account_id = item
        .recipient
        .and_then(|p| p.id)
        .filter(|id| id == entry_id)
        .unwrap_or_else(|| entry_id.to_owned());
    let (id, event, referral) = if let Some(message) = item.message {
        // Decided by the item's kind already; kept so the rule stays next to the reading.
        if message.is_echo {
            return Err(MESSAGE_ECHOES);
        }
        if message.is_deleted {
            return Err(DELETED_MESSAGES);
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
        let ad = referral.ad().ok_or(REFERRALS_NOT_FROM_ADS)?;
        (None, SignalEvent::Referral, Some(ad))
    } else {
        return Err(UNKNOWN);
    };
    // A referral has no message id: sender and time name it, the same on every redelivery.
    let id = id.filter(|m| !m.is_empty()).unwrap_or_else(|| {
        let key = format!("{}\u{1f}{sender}\u{1f}{}", channel.as_str(), item.timestamp);
        format!("referral.{}", &sha256_hex(key.as_bytes())[..32])
    });
    Ok(Signal {
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
    use super::{MAX_TEXT_CHARS, MESSAGE_ECHOES};
    use crate::channels::split;
    use crate::model::Channel;
    use crate::signal::{RejectReason, SignalEvent, UNKNOWN};

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
    fn other_kinds_are_ignored_by_name_whatever_they_lack() {
        let split = split(&page(
            r#"{"sender":{"id":"42"},"recipient":{"id":"7"},"delivery":{"mids":["m"],"watermark":1458668856253}},
               {"recipient":{"id":"42"},"timestamp":1458692752478,"app_roles":{"1":["primary_receiver"]}},
               {"recipient":{"id":"7"},"timestamp":1458692752478,"policy_enforcement":{"action":"block"}},
               {"sender":{"id":"42"},"recipient":{"id":"7"},"read":{"watermark":1}},
               {"sender":{"id":"7"},"recipient":{"id":"42"},"message":{"mid":"e","is_echo":true}},
               {"sender":{"id":"42"},"recipient":{"id":"7"},"timestamp":1,"hologram":{}},
               {"recipient":{"id":"7"},"from":{"id":"42"},"message":"a post","field":"group_feed"}"#,
        ))
        .unwrap();
        assert!(split.rejected.is_empty(), "{:?}", split.rejected);
        assert!(split.signals.is_empty());
        for kind in [
            "delivery",
            "app_roles",
            "policy_enforcement",
            "read",
            MESSAGE_ECHOES,
            UNKNOWN,
            "group_feed",
        ] {
            assert_eq!(split.ignored_of(kind), 1, "{kind}");
        }
        assert_eq!(split.ignored_changes, 7);
    }

    #[test]
    fn a_conversation_item_still_needs_its_time_and_its_account() {
        let split = split(&page(
            r#"{"sender":{"id":"42"},"recipient":{"id":"7"},"message":{"mid":"m","text":"hi"}}"#,
        ))
        .unwrap();
        assert_eq!(
            split.rejected[0].reason,
            RejectReason::BadMessage("missing field `timestamp` at line 1 column 79".into())
        );
        let item = r#"{"sender":{"id":"42"},"recipient":{"id":"7"},"timestamp":1,"message":{"mid":"m","text":"hi"}}"#;
        let body = format!(r#"{{"object":"page","entry":[{{"messaging":[{item}]}}]}}"#);
        let split = crate::channels::split(body.as_bytes()).unwrap();
        assert!(matches!(
            &split.rejected[0].reason,
            RejectReason::BadEntry(e) if e.starts_with("missing field `id`")
        ));
        // Without a conversation item, an entry without an id is counted, not refused.
        let body = r#"{"object":"page","entry":[{"time":1,"messaging":[{"sender":{"id":"42"},"recipient":{"id":"7"},"messaging_feedback":{"feedback_screens":[]}}]}]}"#;
        let split = crate::channels::split(body.as_bytes()).unwrap();
        assert!(split.rejected.is_empty());
        assert_eq!(split.ignored_of("messaging_feedback"), 1);
    }

    #[test]
    fn entry_level_calls_and_fields_are_counted_by_name() {
        let body = br#"{"object":"instagram","entry":[
            {"id":"7","time":1,"field":"comments","value":{"id":"c","text":"nice"}},
            {"id":"7","time":1,"calls":[{"id":"c1","event":"connect"},{"id":"c2","event":"terminate"}]},
            {"id":"7","time":1,"changes":[{"field":"messaging_handover","value":{}},{"field":"brand_new","value":{}},"odd"]}]}"#;
        let split = split(body).unwrap();
        assert!(split.rejected.is_empty() && split.signals.is_empty());
        assert_eq!(split.ignored_of("comments"), 1);
        assert_eq!(split.ignored_of("calls"), 2);
        assert_eq!(split.ignored_of("messaging_handover"), 1);
        assert_eq!(split.ignored_of(UNKNOWN), 2);
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
