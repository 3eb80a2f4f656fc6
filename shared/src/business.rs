//! Business-reported conversions (`POST /events`): a CRM moves a lead to "qualified", a shop
//! ships an order, a chatbot flow reaches its goal. Each item is validated, its user data
//! normalised and hashed here at the edge, and it becomes a [`Signal`] that the dispatcher
//! attributes to the user's ad click like any message.
//!
//! Authentication: `X-Wacapi-Timestamp: <unix seconds>` and
//! `X-Wacapi-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<raw body>")>`, with any of the
//! active keys (several may be active while one is rotated), and a timestamp at most
//! [`MAX_CLOCK_SKEW_SECONDS`] away from now so a captured request cannot be replayed later.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::conversion::mapping::TOO_OLD_SAFETY_MARGIN_SECONDS;
use crate::meta::capi::{Content, CustomData, EventName, MAX_EVENT_AGE_SECONDS};
use crate::model::Channel;
use crate::signal::{SIGNAL_VERSION, Signal, SignalEvent, UserRef};
use crate::values::hashing::{UserDataKey, hash, hash_phone};
use crate::values::money::is_currency_code;

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-wacapi-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-wacapi-signature";
/// Requests whose timestamp is further than this from now are refused (replay protection).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// At most this many events per request.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Events may be stamped this far in the future (clock skew) and are clamped to now.
const FUTURE_TOLERANCE_SECONDS: i64 = 60;

/// The events secret document: `{"keys": ["<key>", "<next key>"]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct EventKeys {
    /// Every active signing key.
    pub keys: Vec<SecretString>,
}

impl crate::secrets::SecretDocument for EventKeys {
    /// Every key must be usable: one empty key would let anybody sign.
    fn validate(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("keys is empty".into());
        }
        for (i, key) in self.keys.iter().enumerate() {
            crate::secrets::check_signing_key(&format!("keys[{i}]"), key)?;
        }
        Ok(())
    }
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventAuthError {
    /// No timestamp or signature header.
    #[error("the X-Wacapi-Timestamp and X-Wacapi-Signature headers are required")]
    Missing,
    /// Not `v1=<64 hex>`, or a timestamp that is not unix seconds.
    #[error("the X-Wacapi-Signature or X-Wacapi-Timestamp header is malformed")]
    Malformed,
    /// The timestamp is too far from now.
    #[error("the request timestamp is more than 300 s away from now")]
    Stale,
    /// No active key produced this signature.
    #[error("the signature does not match any active key")]
    Mismatch,
}

impl EventAuthError {
    /// A metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::Mismatch => "mismatch",
        }
    }
}

fn mac(key: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    crate::signature::hmac_sha256_parts(key, &[timestamp.as_bytes(), b".", body])
}

/// The `X-Wacapi-Signature` value for `body` at `timestamp` with `key`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(
            mac(key, &timestamp.to_string(), body)
                .finalize()
                .into_bytes()
        )
    )
}

/// The one value of a header as a request carries it: none is `None`, more than one is
/// `Malformed`, so a request never gets to choose which claim is checked (API Gateway joins
/// repeated headers with commas, which [`verify`] refuses as malformed too).
pub fn one_header<'a>(values: &[&'a [u8]]) -> Result<Option<&'a [u8]>, EventAuthError> {
    match values {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(EventAuthError::Malformed),
    }
}

/// Verifies the headers against the body with any of `keys`, in constant time per key.
pub fn verify(
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
    keys: &[SecretString],
    now: i64,
) -> Result<(), EventAuthError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(EventAuthError::Missing);
    };
    let timestamp = std::str::from_utf8(timestamp)
        .map_err(|_| EventAuthError::Malformed)?
        .trim();
    let ts: i64 = timestamp.parse().map_err(|_| EventAuthError::Malformed)?;
    let digest_hex = signature
        .trim_ascii()
        .strip_prefix(b"v1=")
        .ok_or(EventAuthError::Malformed)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(digest_hex, &mut digest).map_err(|_| EventAuthError::Malformed)?;
    // abs_diff: a timestamp near i64::MIN or MAX must not wrap into the window (it would let a
    // signed request through with a time that is no time at all).
    if now.abs_diff(ts) > MAX_CLOCK_SKEW_SECONDS.unsigned_abs() {
        return Err(EventAuthError::Stale);
    }
    let matched = keys.iter().fold(false, |found, key| {
        let ok = mac(key.expose_secret().as_bytes(), timestamp, body)
            .verify_slice(&digest)
            .is_ok();
        found | ok
    });
    if matched {
        Ok(())
    } else {
        Err(EventAuthError::Mismatch)
    }
}

/// The request body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    /// 1 to [`MAX_EVENTS_PER_REQUEST`] events.
    pub events: Vec<Value>,
}

/// One reported conversion, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    event_name: String,
    #[serde(default)]
    event_time: Option<Value>,
    idempotency_key: String,
    user: RawUser,
    #[serde(default)]
    waba_id: Option<String>,
    #[serde(default)]
    custom_data: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    user_data: Option<BTreeMap<String, Value>>,
    /// The lead the event concerns (`tiktok_lead_id`: TikTok Lead Generation): only events
    /// that carry one can go to a TikTok CRM event set.
    #[serde(default, rename = "tiktok_lead_id")]
    lead_id: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    bsuid: Option<String>,
    /// Messenger: the page-scoped user id, with the Page it is scoped to.
    #[serde(default)]
    psid: Option<String>,
    #[serde(default)]
    page_id: Option<String>,
    /// Instagram: the Instagram-scoped user id, with the professional account.
    #[serde(default)]
    igsid: Option<String>,
    #[serde(default)]
    instagram_account_id: Option<String>,
}

/// One item's problem, by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// The item's position in `events`.
    pub index: usize,
    /// What is wrong (never the offending personal data).
    pub reason: String,
}

/// Why a request was refused as a whole or item by item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// The body is not `{"events": [...]}`.
    #[error("the body must be {{\"events\": [...]}}: {0}")]
    Body(String),
    /// Too few or too many events.
    #[error("a request carries 1 to {MAX_EVENTS_PER_REQUEST} events, not {0}")]
    Count(usize),
    /// Some items are invalid; none was queued.
    #[error("{} invalid event(s); none was queued", .0.len())]
    Items(Vec<ItemError>),
}

/// Validates a request body into signals (all or nothing), hashing user data here.
pub fn parse(body: &[u8], now: i64) -> Result<Vec<Signal>, EventsError> {
    let body: EventsBody = serde_json::from_slice(body)
        .map_err(|e| EventsError::Body(crate::redact::safe_json_error(&e)))?;
    if body.events.is_empty() || body.events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(EventsError::Count(body.events.len()));
    }
    let mut signals = Vec::with_capacity(body.events.len());
    let mut errors = Vec::new();
    // An event is its account, name and key (as its event id and queue dedup id are): one key
    // may carry a lead and a purchase in one request as in two; the same three twice in one
    // request is a mistake, refused rather than sent once.
    let mut keys = std::collections::HashSet::new();
    for (index, value) in body.events.into_iter().enumerate() {
        match event_signal(value, now) {
            Ok(signal) => {
                let key = match &signal.event {
                    SignalEvent::Business {
                        idempotency_key,
                        event_name,
                        ..
                    } => (
                        signal.account_id.clone(),
                        idempotency_key.clone(),
                        Some(*event_name),
                    ),
                    _ => (String::new(), String::new(), None),
                };
                if !keys.insert(key) {
                    errors.push(ItemError {
                        index,
                        reason:
                            "idempotency_key and event_name repeat an earlier item of this request"
                                .into(),
                    });
                } else {
                    signals.push(signal);
                }
            }
            Err(reason) => errors.push(ItemError { index, reason }),
        }
    }
    if errors.is_empty() {
        Ok(signals)
    } else {
        Err(EventsError::Items(errors))
    }
}

/// One item of the request as a signal, or what is wrong with it: its name, key and time,
/// its user, its value data (nothing personal) and its hashed user data.
fn event_signal(value: Value, now: i64) -> Result<Signal, String> {
    let raw: RawEvent =
        serde_json::from_value(value).map_err(|e| format!("not an event: {}", field_error(&e)))?;
    let event_name: EventName = raw
        .event_name
        .parse()
        .map_err(|e| format!("event_name {e}"))?;
    let key = raw.idempotency_key.trim();
    if key.is_empty() || key.len() > 256 {
        return Err("idempotency_key must be 1 to 256 characters".into());
    }
    let event_time = event_time(raw.event_time.as_ref(), now)?;
    let (channel, user, scoped_account) = user_ref(&raw.user)?;
    let lead_id = lead_id(raw.lead_id)?;
    let custom_data = match raw.custom_data {
        Some(map) => {
            if let Some(path) = crate::values::privacy::find_personal(
                &map,
                &personal_values(&raw.user, raw.user_data.as_ref()),
            ) {
                return Err(PERSONAL_CUSTOM_DATA.replace("custom_data.{key}", &path));
            }
            Some(custom_data(map)?)
        }
        None => None,
    };
    if event_name == EventName::Purchase
        && custom_data
            .as_ref()
            .is_none_or(|c| c.value.is_none() || c.currency.is_none())
    {
        return Err("Purchase needs custom_data.value and custom_data.currency".into());
    }
    let hashed = hashed_user_data(raw.user_data.unwrap_or_default())?;
    Ok(Signal {
        v: SIGNAL_VERSION,
        id: format!("business:{key}"),
        channel,
        account_id: scoped_account
            .or(raw.waba_id.map(|w| w.trim().to_owned()))
            .unwrap_or_default(),
        phone_number_id: None,
        timestamp: event_time.min(now),
        user,
        referral: None,
        event: SignalEvent::Business {
            event_name,
            idempotency_key: key.to_owned(),
            custom_data,
            user_data: hashed,
            lead_id,
        },
    })
}

/// The item's `event_time` (now when absent): whole unix seconds, not milliseconds, not in the
/// future, not older than Meta's 7 days (less the margin retries need).
fn event_time(value: Option<&Value>, now: i64) -> Result<i64, String> {
    let event_time = match value {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => n.as_i64().ok_or("event_time must be whole unix seconds")?,
        Some(_) => return Err("event_time must be a number of unix seconds".into()),
    };
    if event_time <= 0 {
        return Err("event_time must be positive unix seconds".into());
    }
    if event_time > 100_000_000_000 {
        return Err("event_time looks like milliseconds: send unix seconds".into());
    }
    if event_time > now.saturating_add(FUTURE_TOLERANCE_SECONDS) {
        return Err("event_time is in the future".into());
    }
    // Checked: an age that does not fit an i64 is older than any window.
    if now
        .checked_sub(event_time)
        .is_none_or(|age| age > MAX_EVENT_AGE_SECONDS - TOO_OLD_SAFETY_MARGIN_SECONDS)
    {
        return Err("event_time is older than 7 days: Meta refuses it".into());
    }
    Ok(event_time)
}

/// `user_data` normalised and hashed by key: each value a string or a list of strings, each
/// key one of Meta's customer information parameters; duplicates kept once.
fn hashed_user_data(
    user_data: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut hashed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in user_data {
        let key: UserDataKey = name.parse().map_err(|_| {
            format!("user_data.{name} is not one of em, ph, fn, ln, ct, st, zp, country, db, ge, external_id")
        })?;
        let not_text = || format!("user_data.{name} must be a string or a list of strings");
        let values = match value {
            Value::String(s) => vec![s],
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    _ => Err(not_text()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(not_text()),
        };
        for v in values {
            let h = hash(key, &v).map_err(|e| format!("user_data.{e}"))?;
            let list = hashed.entry(key.as_str().to_owned()).or_default();
            if !list.contains(&h) {
                list.push(h);
            }
        }
    }
    Ok(hashed)
}

/// A lead id: 1 to 64 letters, digits, `-` or `_`, given as a string (TikTok's numeric ids are
/// longer than a JSON number keeps exactly).
fn lead_id(value: Option<Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => {
            let id = id.trim();
            let valid = (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid {
                Ok(Some(id.to_owned()))
            } else {
                Err("tiktok_lead_id must be 1 to 64 letters, digits, - or _".into())
            }
        }
        Some(_) => Err(
            "tiktok_lead_id must be a string (TikTok's lead ids are too long for a JSON number)"
                .into(),
        ),
    }
}

/// The event's personal values in clear, whose copies `custom_data` may not carry: the user's
/// phone number and the email, names and phone numbers given in `user_data`.
fn personal_values(
    user: &RawUser,
    user_data: Option<&BTreeMap<String, Value>>,
) -> crate::values::privacy::PersonalValues {
    let mut personal = crate::values::privacy::PersonalValues::default();
    for phone in [&user.wa_id, &user.phone].into_iter().flatten() {
        personal.add_phone(phone);
        personal.add_text(phone);
    }
    for (key, value) in user_data.into_iter().flatten() {
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for v in values {
            match key.as_str() {
                "ph" => personal.add_phone(v),
                "em" | "fn" | "ln" => personal.add_text(v),
                _ => {}
            }
        }
    }
    personal
}

fn trimmed(value: Option<&String>) -> Option<String> {
    value
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The user of a business event: a WhatsApp user (`wa_id`/`phone` and/or `bsuid`), a Messenger
/// user (`psid` with `page_id`) or an Instagram user (`igsid` with `instagram_account_id`); the
/// account the scoped id belongs to comes with it.
fn user_ref(user: &RawUser) -> Result<(Channel, UserRef, Option<String>), String> {
    let whatsapp = user.wa_id.is_some() || user.phone.is_some() || user.bsuid.is_some();
    let messenger = user.psid.is_some() || user.page_id.is_some();
    let instagram = user.igsid.is_some() || user.instagram_account_id.is_some();
    if [whatsapp, messenger, instagram]
        .iter()
        .filter(|f| **f)
        .count()
        > 1
    {
        return Err("user names ids of more than one channel: send wa_id/phone/bsuid, psid with page_id, or igsid with instagram_account_id".into());
    }
    if messenger || instagram {
        let (channel, id, account, names) = if messenger {
            (
                Channel::Messenger,
                &user.psid,
                &user.page_id,
                "psid and page_id",
            )
        } else {
            (
                Channel::Instagram,
                &user.igsid,
                &user.instagram_account_id,
                "igsid and instagram_account_id",
            )
        };
        let (Some(id), Some(account)) = (trimmed(id.as_ref()), trimmed(account.as_ref())) else {
            return Err(format!("user needs both {names}"));
        };
        let user = UserRef {
            scoped_id: Some(id),
            ..UserRef::default()
        };
        return Ok((channel, user, Some(account)));
    }
    let phone = user.wa_id.as_deref().or(user.phone.as_deref());
    let phone = match phone {
        Some(p) => Some(
            hash_phone(p).ok_or("user phone needs 7 to 15 digits including the country code")?,
        ),
        None => None,
    };
    let bsuid = trimmed(user.bsuid.as_ref());
    if phone.is_none() && bsuid.is_none() {
        return Err(
            "user needs wa_id, phone or bsuid (WhatsApp), psid and page_id (Messenger), or igsid and instagram_account_id (Instagram)"
                .into(),
        );
    }
    let user = UserRef {
        bsuid,
        ph_e164: phone.as_ref().map(|p| p.e164.clone()),
        ph: phone.map(|p| p.digits),
        ..UserRef::default()
    };
    Ok((Channel::Whatsapp, user, None))
}

fn custom_data(mut map: serde_json::Map<String, Value>) -> Result<CustomData, String> {
    use crate::values::money::{MAX_AMOUNT, MAX_QUANTITY, is_valid_amount, is_valid_quantity};
    let amount_rule = format!("a number from 0 to {MAX_AMOUNT:e}");
    let mut data = CustomData::default();
    if let Some(v) = map.remove("value") {
        let value = v
            .as_f64()
            .filter(|v| is_valid_amount(*v))
            .ok_or_else(|| format!("custom_data.value must be {amount_rule}"))?;
        data.value = Some(crate::values::money::round_money(value));
    }
    if let Some(v) = map.remove("currency") {
        let currency = v
            .as_str()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| is_currency_code(c))
            .ok_or("custom_data.currency must be an ISO 4217 code such as \"USD\"")?;
        data.currency = Some(currency);
    }
    if let Some(v) = map.remove("num_items") {
        data.num_items = Some(
            v.as_u64()
                .filter(|n| (1..=MAX_NUM_ITEMS).contains(n))
                .ok_or_else(|| {
                    format!(
                        "custom_data.num_items must be a whole number from 1 to {MAX_NUM_ITEMS}"
                    )
                })?,
        );
    }
    if let Some(v) = map.remove("content_type") {
        let t = v.as_str().unwrap_or_default();
        if t != "product" && t != "product_group" {
            return Err("custom_data.content_type must be product or product_group".into());
        }
        data.content_type = Some(t.to_owned());
    }
    if let Some(v) = map.remove("content_ids") {
        let ids: Vec<String> = serde_json::from_value(v)
            .map_err(|_| "custom_data.content_ids must be a list of strings")?;
        data.content_ids = Some(ids);
    }
    if let Some(v) = map.remove("contents") {
        let contents: Vec<Content> = serde_json::from_value(v).map_err(|_| {
            "custom_data.contents must be a list of {id, quantity, item_price}".to_owned()
        })?;
        for (i, c) in contents.iter().enumerate() {
            if !is_valid_quantity(c.quantity as f64) {
                return Err(format!(
                    "custom_data.contents[{i}].quantity must be a whole number from 1 to {MAX_QUANTITY}"
                ));
            }
            if !is_valid_amount(c.item_price) {
                return Err(format!(
                    "custom_data.contents[{i}].item_price must be {amount_rule}"
                ));
            }
        }
        data.contents = Some(contents);
    }
    if let Some(v) = map.remove("order_id") {
        let id = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return Err("custom_data.order_id must be a string".into()),
        };
        data.order_id = Some(id);
    }
    for (key, value) in &map {
        if crate::signal::depth(value) > crate::signal::MAX_FLOW_FIELD_DEPTH {
            return Err(format!(
                "custom_data.{key} is nested deeper than {} levels",
                crate::signal::MAX_FLOW_FIELD_DEPTH
            ));
        }
    }
    data.extra = map.into_iter().collect();
    Ok(data)
}

/// The largest `num_items` accepted.
const MAX_NUM_ITEMS: u64 = 1_000_000_000;

/// Why a personal value is refused in `custom_data` (`custom_data.{key}` becomes its path).
const PERSONAL_CUSTOM_DATA: &str = "custom_data.{key} reads as an email address or a phone number, or repeats the user's personal data; custom_data is sent in clear: send it in user_data, which is hashed";

fn field_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") || text.starts_with("unknown field") {
        text.split(" at line").next().unwrap_or_default().to_owned()
    } else {
        format!("{:?} error", e.classify())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_100_000;

    fn keys() -> Vec<SecretString> {
        vec![
            SecretString::from("old-key".to_owned()),
            SecretString::from("new-key".to_owned()),
        ]
    }

    #[test]
    fn signatures_verify_with_any_active_key_and_expire() {
        let body = br#"{"events":[]}"#;
        let sig = sign(b"new-key", NOW, body);
        let ts = NOW.to_string();
        assert_eq!(
            verify(
                Some(ts.as_bytes()),
                Some(sig.as_bytes()),
                body,
                &keys(),
                NOW + 10
            ),
            Ok(())
        );
        let old = sign(b"old-key", NOW, body);
        assert_eq!(
            verify(
                Some(ts.as_bytes()),
                Some(old.as_bytes()),
                body,
                &keys(),
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                Some(ts.as_bytes()),
                Some(sig.as_bytes()),
                body,
                &keys(),
                NOW + 301
            ),
            Err(EventAuthError::Stale)
        );
        assert_eq!(
            verify(
                Some(ts.as_bytes()),
                Some(sign(b"x", NOW, body).as_bytes()),
                body,
                &keys(),
                NOW
            ),
            Err(EventAuthError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let later = (NOW + 5).to_string();
        assert_eq!(
            verify(
                Some(later.as_bytes()),
                Some(sig.as_bytes()),
                body,
                &keys(),
                NOW
            ),
            Err(EventAuthError::Mismatch)
        );
        assert_eq!(
            verify(None, Some(b"v1=00"), body, &keys(), NOW),
            Err(EventAuthError::Missing)
        );
        assert_eq!(
            verify(Some(b"soon"), Some(sig.as_bytes()), body, &keys(), NOW),
            Err(EventAuthError::Malformed)
        );
        assert_eq!(
            verify(Some(ts.as_bytes()), Some(b"sha256=abc"), body, &keys(), NOW),
            Err(EventAuthError::Malformed)
        );
    }

    fn item_error(event: serde_json::Value) -> String {
        let body = serde_json::to_vec(&serde_json::json!({ "events": [event] })).unwrap();
        match parse(&body, NOW) {
            Err(EventsError::Items(items)) => items[0].reason.clone(),
            other => panic!("refused item expected: {other:?}"),
        }
    }

    fn purchase(custom_data: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"event_name": "Purchase", "idempotency_key": "k",
            "user": {"wa_id": "16505551234"}, "custom_data": custom_data})
    }

    #[test]
    fn states_outside_the_us_are_hashed_by_name_not_refused() {
        let mut event = purchase(serde_json::json!({"value": 1.0, "currency": "AUD"}));
        event["user_data"] =
            serde_json::json!({"st": "New South Wales", "country": "Australia", "ct": "Sydney"});
        let body = serde_json::to_vec(&serde_json::json!({ "events": [event] })).unwrap();
        let signals = parse(&body, NOW).unwrap();
        let SignalEvent::Business { user_data, .. } = &signals[0].event else {
            panic!("a business event");
        };
        let sha = |v: &str| vec![crate::values::hashing::sha256_hex(v.as_bytes())];
        assert_eq!(user_data["st"], sha("newsouthwales"));
        assert_eq!(user_data["country"], sha("au"));
        assert_eq!(user_data["ct"], sha("sydney"));
    }

    #[test]
    fn a_tiktok_lead_id_is_kept_as_given_or_refused_by_name() {
        let lead = |id: serde_json::Value| {
            let mut event = purchase(serde_json::json!({"value": 1.0, "currency": "USD"}));
            event["tiktok_lead_id"] = id;
            event
        };
        let body = serde_json::to_vec(
            &serde_json::json!({"events": [lead(" 7301234567890123456 ".into())]}),
        )
        .unwrap();
        let signals = parse(&body, NOW).unwrap();
        let SignalEvent::Business { lead_id, .. } = &signals[0].event else {
            panic!("a business event");
        };
        assert_eq!(lead_id.as_deref(), Some("7301234567890123456"));
        for (bad, want) in [
            (
                serde_json::json!(7301234567890123456u64),
                "must be a string",
            ),
            (serde_json::json!(""), "1 to 64 letters"),
            (serde_json::json!("a b"), "1 to 64 letters"),
            (serde_json::json!("x".repeat(65)), "1 to 64 letters"),
        ] {
            let reason = item_error(lead(bad.clone()));
            assert!(reason.starts_with("tiktok_lead_id"), "{bad}: {reason}");
            assert!(reason.contains(want), "{bad}: {reason}");
        }
    }

    #[test]
    fn values_out_of_meta_s_bounds_are_refused_by_name() {
        for (custom_data, want) in [
            (
                serde_json::json!({"value": 1e303, "currency": "USD"}),
                "custom_data.value must be a number from 0 to 1e12",
            ),
            (
                serde_json::json!({"value": -1, "currency": "USD"}),
                "custom_data.value must be",
            ),
            (
                serde_json::json!({"value": 1, "currency": "USD", "contents": [{"id": "a", "quantity": 0, "item_price": 1}]}),
                "custom_data.contents[0].quantity must be a whole number from 1 to",
            ),
            (
                serde_json::json!({"value": 1, "currency": "USD", "contents": [{"id": "a", "quantity": 1, "item_price": -2}]}),
                "custom_data.contents[0].item_price must be",
            ),
            (
                serde_json::json!({"value": 1, "currency": "USD", "num_items": 0}),
                "custom_data.num_items must be",
            ),
        ] {
            let reason = item_error(purchase(custom_data.clone()));
            assert!(reason.starts_with(want), "{custom_data}: {reason}");
        }
    }

    #[test]
    fn personal_or_deep_custom_data_is_refused_without_echoing_it() {
        for (key, value, path) in [
            (
                "contact",
                serde_json::json!("sheena@example.com"),
                "contact",
            ),
            (
                "note",
                serde_json::json!(["call +1 650 555 1234", "+1 650 555 1234"]),
                "note[1]",
            ),
            (
                "order_id",
                serde_json::json!("sheena@example.com"),
                "order_id",
            ),
            ("order_id", serde_json::json!("+1 650 555 0142"), "order_id"),
            (
                "content_ids",
                serde_json::json!(["sku", "sheena@example.com"]),
                "content_ids[1]",
            ),
            (
                "contents",
                serde_json::json!([{"id": "sheena@example.com", "quantity": 1, "item_price": 1.0}]),
                "contents[0].id",
            ),
            ("sheena@example.com", serde_json::json!(true), "<key 2>"),
            ("whatsapp", serde_json::json!(16505551234u64), "whatsapp"),
            // The user's own wa_id (purchase() sends 16505551234), in any formatting.
            (
                "buyer_ref",
                serde_json::json!("1 (650) 555-1234"),
                "buyer_ref",
            ),
        ] {
            let mut cd = serde_json::json!({"value": 1, "currency": "USD"});
            cd[key] = value;
            let reason = item_error(purchase(cd));
            assert!(
                reason.starts_with(&format!(
                    "custom_data.{path} reads as an email address or a phone number"
                )),
                "{key}: {reason}"
            );
            assert!(
                !reason.contains("sheena") && !reason.contains("555"),
                "{reason}"
            );
        }
        // The other side of the line: catalogue ids, order numbers, prices, words.
        let mut cd = serde_json::json!({"value": 1299.5, "currency": "BRL", "order_id": "2026-000142",
            "content_ids": ["1234567890123456"], "content_name": "Gold plan",
            "contents": [{"id": "12345678901", "quantity": 1, "item_price": 1299.5}]});
        cd["store"] = serde_json::json!({"city": "Leeds", "code": 42});
        let body = serde_json::to_vec(&serde_json::json!({ "events": [purchase(cd)] })).unwrap();
        assert!(parse(&body, NOW).is_ok());
        let deep = serde_json::from_str::<Value>(&format!("{}1{}", "[".repeat(40), "]".repeat(40)))
            .unwrap();
        let reason = item_error(purchase(
            serde_json::json!({"value": 1, "currency": "USD", "deep": deep}),
        ));
        assert_eq!(reason, "custom_data.deep is nested deeper than 16 levels");
    }
}
