//! What counts as personal data in places where only non-personal data may go: `custom_data`
//! (sent to Meta in clear) and the names of Flow fields feeding it.
//!
//! Meta's customer-information keys (`em`, `ph`, `fn`, `ln`, `ct`, `st`, `zp`, `country`, `db`,
//! `ge`, `external_id`) travel only hashed, in `user_data`. A rule may not route a Flow field
//! with such a name into `custom_data` ([`is_personal_field_name`], checked at config load), and a
//! string that reads as an email address or a phone number is never sent in `custom_data`
//! whatever its key ([`looks_personal`], checked when an event is built).
//!
//! [`find_personal`] draws the line for a whole `custom_data`, keys and values at any depth:
//! - an email address anywhere (a key, a value, an id) is personal;
//! - an international phone number anywhere: a `+` (or `00`) and 7 to 15 digits, with phone
//!   punctuation or none (`"+1 650 555 0142"`);
//! - in free values (custom keys), also a phone number as people write it (`(650) 555-1212`,
//!   `650-555-1212`) and 10 to 15 bare digits, as a string or a JSON number;
//! - ids (`order_id`, `content_ids`, `contents[].id`) are often long digit strings and may look
//!   like anything, so bare digits there are personal only when they are the user's own phone
//!   number;
//! - and anything equal to a personal value of the same event: the user's phone number (compared
//!   by its hash, the only form a signal carries), email, name, or any `user_data` value given
//!   in clear.
//!
//! Prices, quantities, catalogue ids, order numbers like `ORDER-8812` or `2026-000142` and
//! words stay.

use std::collections::HashSet;

use serde_json::Value;

/// Field names (lower case, without `_`, `-`, `.` or spaces) that name customer information.
const PERSONAL_NAMES: &[&str] = &[
    "em",
    "email",
    "emailaddress",
    "mail",
    "ph",
    "phone",
    "phonenumber",
    "mobile",
    "cellphone",
    "tel",
    "telephone",
    "whatsapp",
    "waid",
    "fn",
    "ln",
    "name",
    "fullname",
    "firstname",
    "lastname",
    "givenname",
    "familyname",
    "surname",
    "ct",
    "city",
    "st",
    "state",
    "zp",
    "zip",
    "zipcode",
    "postalcode",
    "postcode",
    "country",
    "db",
    "dob",
    "dateofbirth",
    "birthday",
    "birthdate",
    "ge",
    "gender",
    "sex",
    "address",
    "street",
    "streetaddress",
    "externalid",
];

fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a field name names customer information (`email`, `Phone_Number`, `full-name`...).
pub fn is_personal_field_name(name: &str) -> bool {
    PERSONAL_NAMES.contains(&folded(name).as_str())
}

/// Whether `text` reads as an email address.
pub fn looks_like_email(text: &str) -> bool {
    let t = text.trim();
    match t.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !t.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether `text` reads as a phone number: 7 to 15 digits written with a `+` or phone
/// punctuation, or 10 to 15 bare digits (an international number without its `+`).
pub fn looks_like_phone(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' '))
    {
        return false;
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let punctuated = t.starts_with('+') || t.contains(['(', ')', '-', ' ']);
    if t.contains('.') && !t.contains(['(', ')', '-', ' ', '+']) {
        // `12.50`, `1.299.000`: amounts, not phone numbers.
        return false;
    }
    (punctuated && (7..=15).contains(&digits)) || (10..=15).contains(&digits)
}

/// Whether a value holds a string that reads as an email address or a phone number, at any
/// depth.
pub fn looks_personal(value: &Value) -> bool {
    match value {
        Value::String(s) => looks_like_email(s) || looks_like_phone(s),
        Value::Array(items) => items.iter().any(looks_personal),
        Value::Object(map) => map.values().any(looks_personal),
        _ => false,
    }
}

/// Whether `text` reads as an international phone number: a `+` (or `00`) and 7 to 15 digits,
/// with phone punctuation (spaces, `-`, `.`, brackets) or none.
pub fn looks_like_international_phone(text: &str) -> bool {
    let t = text.trim();
    let rest = match (t.strip_prefix('+'), t.strip_prefix("00")) {
        (Some(rest), _) | (None, Some(rest)) => rest,
        _ => return false,
    };
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    rest.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '(' | ')' | '.' | ' '))
        && (7..=15).contains(&digits)
}

/// The personal values of one event, to refuse (or drop) their copies in `custom_data`.
#[derive(Debug, Clone, Default)]
pub struct PersonalValues {
    /// Lower-cased, trimmed texts (emails, names, other clear `user_data`).
    texts: HashSet<String>,
    /// SHA-256 of phone numbers as digits (Meta's `ph`).
    phone_hashes: HashSet<String>,
}

impl PersonalValues {
    /// A clear value of the event's user (an email, a name...). Values shorter than 3
    /// characters are left out: a one-letter initial would make every "a" personal.
    pub fn add_text(&mut self, value: &str) {
        let v = value.trim().to_lowercase();
        if v.chars().count() >= 3 {
            self.texts.insert(v);
        }
    }

    /// A phone number of the event's user, in clear.
    pub fn add_phone(&mut self, value: &str) {
        if let Some(digits) = crate::values::hashing::normalize_phone(value) {
            self.phone_hashes
                .insert(crate::values::hashing::sha256_hex(digits.as_bytes()));
        }
    }

    /// The SHA-256 of the user's phone number as digits (a signal's `ph`).
    pub fn add_phone_hash(&mut self, hash: &str) {
        self.phone_hashes.insert(hash.to_ascii_lowercase());
    }

    /// Whether `text` is one of the values (a phone number in any formatting).
    fn contains(&self, text: &str) -> bool {
        let t = text.trim();
        if self.texts.contains(&t.to_lowercase()) {
            return true;
        }
        !self.phone_hashes.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' '))
            && crate::values::hashing::normalize_phone(t).is_some_and(|digits| {
                self.phone_hashes
                    .contains(&crate::values::hashing::sha256_hex(digits.as_bytes()))
            })
    }
}

/// How a place in `custom_data` is read: free text, or an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Free,
    Id,
}

/// The path of the first key or value in `custom_data` (a JSON object) that is personal, as
/// the module documentation draws the line; `None` when there is none. The path names keys and
/// positions (`custom_data.contents[1].id`), never the value.
pub fn find_personal(
    data: &serde_json::Map<String, Value>,
    personal: &PersonalValues,
) -> Option<String> {
    data.iter().enumerate().find_map(|(i, (key, value))| {
        let place = match key.as_str() {
            "order_id" | "content_ids" => Place::Id,
            _ => Place::Free,
        };
        if key_is_personal(key, personal) {
            return Some(key_path("custom_data", i));
        }
        let path = format!("custom_data.{key}");
        if key == "contents" {
            return contents_personal(value, &path, personal);
        }
        value_personal(value, place, &path, personal)
    })
}

/// The path of a personal key: its position, never its text.
fn key_path(parent: &str, index: usize) -> String {
    format!("{parent}.<key {}>", index + 1)
}

fn key_is_personal(key: &str, personal: &PersonalValues) -> bool {
    looks_like_email(key) || looks_like_phone(key) || personal.contains(key)
}

/// `contents[]`: each item's `id` is an identifier, its other keys free.
fn contents_personal(value: &Value, path: &str, personal: &PersonalValues) -> Option<String> {
    let Value::Array(items) = value else {
        return value_personal(value, Place::Free, path, personal);
    };
    items.iter().enumerate().find_map(|(i, item)| match item {
        Value::Object(map) => map.iter().enumerate().find_map(|(j, (k, v))| {
            if key_is_personal(k, personal) {
                return Some(key_path(&format!("{path}[{i}]"), j));
            }
            let path = format!("{path}[{i}].{k}");
            let place = if k == "id" { Place::Id } else { Place::Free };
            value_personal(v, place, &path, personal)
        }),
        other => value_personal(other, Place::Free, &format!("{path}[{i}]"), personal),
    })
}

fn value_personal(
    value: &Value,
    place: Place,
    path: &str,
    personal: &PersonalValues,
) -> Option<String> {
    // Iterative: custom data is bounded in depth, but a walk must not depend on it.
    let mut stack = vec![(value, path.to_owned())];
    while let Some((v, path)) = stack.pop() {
        match v {
            Value::String(s) => {
                let personal_text = looks_like_email(s)
                    || looks_like_international_phone(s)
                    || personal.contains(s)
                    || (place == Place::Free && looks_like_phone(s));
                if personal_text {
                    return Some(path);
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                let digits = text.bytes().filter(u8::is_ascii_digit).count();
                let whole = n.is_u64() || n.is_i64();
                if personal.contains(&text)
                    || (place == Place::Free && whole && (10..=15).contains(&digits))
                {
                    return Some(path);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((item, format!("{path}[{i}]")));
                }
            }
            Value::Object(map) => {
                if let Some(j) = map.keys().position(|k| key_is_personal(k, personal)) {
                    return Some(key_path(&path, j));
                }
                for (k, item) in map.iter().rev() {
                    stack.push((item, format!("{path}.{k}")));
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn personal_field_names_in_any_spelling() {
        for name in [
            "email",
            "E-mail",
            "phone_number",
            "Full Name",
            "zip",
            "external_id",
            "DOB",
        ] {
            assert!(is_personal_field_name(name), "{name}");
        }
        for name in ["flow_token", "budget", "product", "content_name", "plan"] {
            assert!(!is_personal_field_name(name), "{name}");
        }
    }

    #[test]
    fn emails_and_phone_numbers_are_recognised_and_amounts_and_ids_are_not() {
        for personal in [
            "sheena@example.com",
            " Sheena.Nelson@Example.com ",
            "+1 650 555 1234",
            "(650) 555-1212",
            "+5511987654321",
            "16505551234",
            "650-555-1212",
        ] {
            assert!(looks_personal(&json!(personal)), "{personal}");
        }
        for not in [
            "lead_form_v1",
            "12.50",
            "1.299.000",
            "Gold plan",
            "1299",
            "ORDER-8812",
            "a@b",
            "",
        ] {
            assert!(!looks_personal(&json!(not)), "{not}");
        }
        assert!(looks_personal(
            &json!({"contact": ["x", "+1 650 555 1234"]})
        ));
    }

    fn found(data: serde_json::Value, personal: &PersonalValues) -> Option<String> {
        find_personal(data.as_object().unwrap(), personal)
    }

    /// Both sides of the line, each class of input.
    #[test]
    fn the_line_between_personal_and_not_in_custom_data() {
        let mut user = PersonalValues::default();
        user.add_phone("+1 650 555 0142");
        user.add_text("sheena.nelson@example.com");
        user.add_text("Sheena");
        let refused = [
            (
                json!({"order_id": "+1 650 555 0142"}),
                "custom_data.order_id",
            ),
            (json!({"order_id": "16505550142"}), "custom_data.order_id"),
            (json!({"order_id": 16505550142u64}), "custom_data.order_id"),
            (
                json!({"order_id": "0044 7700 900123"}),
                "custom_data.order_id",
            ),
            (
                json!({"content_ids": ["sku-1", "a@b.co"]}),
                "custom_data.content_ids[1]",
            ),
            (
                json!({"contents": [{"id": "sku", "quantity": 1, "item_price": 1.0}, {"id": "x@y.io", "quantity": 1, "item_price": 1.0}]}),
                "custom_data.contents[1].id",
            ),
            (
                json!({"a": 1, "sheena@example.com": 1}),
                "custom_data.<key 2>",
            ),
            (json!({"contact": 5511987654321u64}), "custom_data.contact"),
            (
                json!({"note": {"deep": [{"x": "(650) 555-1212"}]}}),
                "custom_data.note.deep[0].x",
            ),
            (json!({"buyer": "Sheena"}), "custom_data.buyer"),
            (
                json!({"buyer": "SHEENA.NELSON@EXAMPLE.COM"}),
                "custom_data.buyer",
            ),
            (json!({"lead": {"who": "sheena"}}), "custom_data.lead.who"),
            (json!({"ref": "+44 7700 900123"}), "custom_data.ref"),
        ];
        for (data, path) in refused {
            assert_eq!(found(data.clone(), &user).as_deref(), Some(path), "{data}");
        }
        let kept = [
            json!({"order_id": "ORDER-8812"}),
            json!({"order_id": "2026-000142"}),
            json!({"order_id": "1234567890123"}),
            json!({"order_id": 8812}),
            json!({"content_ids": ["1234567890123456", "di9ozbzfi4"]}),
            json!({"contents": [{"id": "12345678901", "quantity": 2, "item_price": 1299.0}]}),
            json!({"content_name": "Gold plan", "content_category": "plans"}),
            json!({"value": 1299.5, "currency": "BRL", "num_items": 3}),
            json!({"predicted_ltv": 250000.0, "net_revenue": 12.5}),
            json!({"flow_token": "lead_form_v1", "budget": "12.50"}),
            json!({"sku_count": 1234567}),
            json!({"size": "XL", "initial": "S"}),
        ];
        for data in kept {
            assert_eq!(found(data.clone(), &user), None, "{data}");
        }
    }

    #[test]
    fn international_phone_numbers() {
        for yes in [
            "+1 650 555 0142",
            "+447700900123",
            "0044 7700 900123",
            "+55 (11) 98765-4321",
        ] {
            assert!(looks_like_international_phone(yes), "{yes}");
        }
        for no in ["+12", "ORDER+1", "1 650 555 0142", "+1 650 CALL NOW", "00"] {
            assert!(!looks_like_international_phone(no), "{no}");
        }
    }
}
