//! The data a rule's event carries: its value data (`custom_data`: from an order, from a
//! Flow's fields, fixed by the rule, or Meta's for automatic events; checked and rounded, and
//! nothing personal in it, since it travels in clear) and its hashed user data (the sender's
//! phone hash and the Flow fields the rule hashes).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::conversion::rules::{Rule, UserDataTarget};
use crate::model::custom_data::{Content, CustomData};
use crate::signal::{OrderItem, Signal, SignalEvent};
use crate::values::hashing::{NormalizeError, UserDataKey, hash};
use crate::values::money::{is_currency_code, is_valid_amount, is_valid_quantity, round_money};
use crate::values::privacy::{PersonalValues, find_personal};

/// Leaves out of `custom_data` every part that is personal as
/// [`crate::values::privacy::find_personal`] draws the line (an email address, an
/// international phone number, or a copy of one of `personal`): `custom_data` goes to Meta in
/// clear, and personal data may only travel hashed. A whole custom key goes; of `content_ids`
/// and `contents` only the personal entries. Returns how many parts were left out.
pub fn scrub_custom_data(data: &mut CustomData, personal: &PersonalValues) -> usize {
    let is_personal = |key: &str, value: Value| {
        let mut one = Map::new();
        one.insert(key.to_owned(), value);
        find_personal(&one, personal).is_some()
    };
    let mut dropped = 0;
    let mut drop_if = |personal: bool| {
        dropped += usize::from(personal);
        !personal
    };
    data.extra
        .retain(|key, value| drop_if(is_personal(key, value.clone())));
    if let Some(id) = data.order_id.take()
        && drop_if(is_personal("order_id", Value::from(id.as_str())))
    {
        data.order_id = Some(id);
    }
    if let Some(ids) = &mut data.content_ids {
        ids.retain(|id| drop_if(is_personal("content_ids", Value::from(vec![id.as_str()]))));
    }
    if let Some(contents) = &mut data.contents {
        contents.retain(|c| {
            drop_if(is_personal(
                "contents",
                serde_json::json!([{ "id": c.id.as_str() }]),
            ))
        });
    }
    dropped
}

/// The personal values of a rule's event, whose copies its `custom_data` may not carry: the
/// sender's phone number (by its hash) and the Flow fields the rule hashes into `user_data`.
pub fn personal_values(rule: &Rule, signal: &Signal) -> PersonalValues {
    let mut personal = PersonalValues::default();
    if let Some(ph) = &signal.user.ph {
        personal.add_phone_hash(ph);
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (target, field) in &rule.user_data {
            if let Some(text) = field_text(fields, field) {
                match target {
                    UserDataTarget::Key(UserDataKey::Ph) => personal.add_phone(&text),
                    _ => personal.add_text(&text),
                }
            }
        }
    }
    personal
}

/// `custom_data` for a firing rule: `Some(None)` when there is none, `None` when the signal's
/// data is unusable (an order without items, mixed currencies...).
pub fn custom_data(rule: &Rule, signal: &Signal) -> Option<Option<CustomData>> {
    let spec = &rule.custom_data;
    let mut data = CustomData::default();
    if spec.from_order {
        let SignalEvent::Order { items, .. } = &signal.event else {
            return None;
        };
        data = order_custom_data(items)?;
    }
    if let SignalEvent::AutomaticEvent {
        custom_data: Some(meta),
        ..
    } = &signal.event
    {
        let currency = meta
            .currency
            .as_deref()
            .map(|c| c.trim().to_ascii_uppercase());
        // Meta writes the amount × 1000 (see money::AUTOMATIC_EVENT_VALUE_SCALE for the source).
        if let Some(raw) = &meta.value {
            let value = crate::values::money::automatic_event_value(raw, currency.as_deref())
                .filter(|v| is_valid_amount(*v))?;
            data.value = Some(round_money(value));
        }
        data.currency = currency;
    }
    if let Some(value) = spec.value {
        data.value = Some(round_money(value));
    }
    if let Some(currency) = &spec.currency {
        data.currency = Some(currency.clone());
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (key, field) in &spec.fields {
            if let Some(value) = fields.get(field) {
                apply_field(&mut data, key, value)?;
            }
        }
    }
    if data
        .currency
        .as_deref()
        .is_some_and(|c| !is_currency_code(c))
    {
        return None;
    }
    Some((!data.is_empty()).then_some(data))
}

/// An order's value data, or `None` when it cannot be computed: no items, a line whose
/// quantity, price or currency could not be read, a quantity outside 1..=10^6 or fractional, a
/// price or total outside 0..=10^12 (see [`crate::values::money`]), or mixed currencies.
fn order_custom_data(items: &[OrderItem]) -> Option<CustomData> {
    struct Line<'a> {
        id: &'a str,
        quantity: f64,
        price: f64,
    }
    let currency = items
        .first()?
        .currency
        .as_deref()?
        .trim()
        .to_ascii_uppercase();
    let lines = items
        .iter()
        .map(|i| {
            let same_currency = i
                .currency
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(&currency));
            let quantity = i.quantity.filter(|q| is_valid_quantity(*q))?;
            let price = i.item_price.filter(|p| is_valid_amount(*p))?;
            same_currency.then_some(Line {
                id: i.product_retailer_id.as_deref().unwrap_or_default(),
                quantity,
                price,
            })
        })
        .collect::<Option<Vec<Line<'_>>>>()?;
    let value: f64 = lines.iter().map(|l| l.quantity * l.price).sum();
    if !is_valid_amount(value) {
        return None;
    }
    let num_items: f64 = lines.iter().map(|l| l.quantity).sum();
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| !l.id.is_empty())
        .map(|l| l.id.to_owned())
        .collect();
    Some(CustomData {
        currency: Some(currency),
        value: Some(round_money(value)),
        contents: Some(
            lines
                .iter()
                .filter(|l| !l.id.is_empty())
                .map(|l| Content {
                    id: l.id.to_owned(),
                    quantity: l.quantity.round() as u64,
                    item_price: l.price,
                    delivery_category: None,
                })
                .collect(),
        ),
        content_ids: Some(ids),
        content_type: Some("product".to_owned()),
        num_items: Some(num_items.round() as u64),
        order_id: None,
        extra: BTreeMap::new(),
    })
}

/// Puts one Flow field into `custom_data` under `key`, typed as Meta expects.
fn apply_field(data: &mut CustomData, key: &str, value: &Value) -> Option<()> {
    let as_text = || match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match key {
        "value" => {
            let v = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|v| is_valid_amount(*v))?;
            data.value = Some(round_money(v));
        }
        "currency" => data.currency = Some(as_text()?.to_ascii_uppercase()),
        "num_items" => data.num_items = Some(as_text()?.parse().ok()?),
        "order_id" => data.order_id = Some(as_text()?),
        "content_type" => data.content_type = Some(as_text()?),
        _ => {
            data.extra.insert(key.to_owned(), value.clone());
        }
    }
    Some(())
}

/// Hashed `user_data`: the sender's phone hash plus the rule's Flow fields.
pub fn user_data(
    rule: &Rule,
    signal: &Signal,
) -> (BTreeMap<String, Vec<String>>, Vec<NormalizeError>) {
    let mut hashed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut push = |key: UserDataKey, value: String| {
        let list = hashed.entry(key.as_str().to_owned()).or_default();
        if !list.contains(&value) {
            list.push(value);
        }
    };
    if let Some(ph) = &signal.user.ph {
        push(UserDataKey::Ph, ph.clone());
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (target, field) in &rule.user_data {
            let Some(text) = field_text(fields, field) else {
                continue;
            };
            match target {
                UserDataTarget::Key(key) => match hash(*key, &text) {
                    Ok(h) => push(*key, h),
                    Err(e) => dropped.push(e),
                },
                UserDataTarget::FullName => {
                    let words: Vec<&str> = text.split_whitespace().collect();
                    let parts = match words.as_slice() {
                        [] => vec![],
                        [only] => vec![(UserDataKey::Fn, *only)],
                        [first, .., last] => {
                            vec![(UserDataKey::Fn, *first), (UserDataKey::Ln, *last)]
                        }
                    };
                    for (key, part) in parts {
                        match hash(key, part) {
                            Ok(h) => push(key, h),
                            Err(e) => dropped.push(e),
                        }
                    }
                }
            }
        }
    }
    (hashed, dropped)
}

fn field_text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
