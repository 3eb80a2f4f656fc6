//! What counts as personal data in places where only non-personal data may go: `custom_data`
//! (sent to Meta in clear) and the names of Flow fields feeding it.
//!
//! Meta's customer-information keys (`em`, `ph`, `fn`, `ln`, `ct`, `st`, `zp`, `country`, `db`,
//! `ge`, `external_id`) travel only hashed, in `user_data`. A rule may not route a Flow field
//! with such a name into `custom_data` ([`is_personal_field_name`], checked at config load), and a
//! string that reads as an email address or a phone number is never sent in `custom_data`
//! whatever its key ([`looks_personal`], checked when an event is built).

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
}
