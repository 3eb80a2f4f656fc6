//! Amounts as catalogs and Meta write them, turned into the currency units CAPI expects.
//!
//! - Catalog prices arrive as JSON numbers (Meta's documented form), numeric strings, or strings
//!   a catalog formatted for people: `"1,299.00"`, `"1.299,00"`, `"1 299"`, `"₹1,29,999.00"`,
//!   `"R$ 49,90"`. [`parse_amount`] reads them; what it cannot read is `None`, and the caller
//!   skips the conversion (it never guesses a number).
//! - Meta's `automatic_events` report `custom_data.value` as the purchase amount **multiplied
//!   by 1000** ([`automatic_event_value`]).

use crate::lenient::Amount;

/// Meta's automatic-event amounts are the purchase amount × 1000.
///
/// Source: WhatsApp Business Platform › Webhooks › `automatic_events` webhook reference
/// (developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/automatic_events,
/// updated May 21, 2026): `custom_data.value` is the "Purchase amount, calculated as product
/// price multiplied by 1000" (example `25000` for 25.00).
pub const AUTOMATIC_EVENT_VALUE_SCALE: f64 = 1000.0;

/// The largest monetary amount (a `value`, an `item_price`) wacapi sends. Meta documents no
/// ceiling for `custom_data.value`; 10^12 is above any single purchase in any currency (about
/// 40 million US dollars in Vietnamese dong, the smallest unit in common use) and far inside
/// the range a JSON number keeps exactly to the cent, so a value that passes is a value Meta
/// reads as written.
pub const MAX_AMOUNT: f64 = 1e12;

/// The largest quantity of one order line or content.
pub const MAX_QUANTITY: f64 = 1e6;

/// An amount Meta can take: finite, not negative, at most [`MAX_AMOUNT`].
pub fn is_valid_amount(v: f64) -> bool {
    v.is_finite() && (0.0..=MAX_AMOUNT).contains(&v)
}

/// A quantity Meta can take: a whole number from 1 to [`MAX_QUANTITY`].
pub fn is_valid_quantity(q: f64) -> bool {
    q.fract() == 0.0 && (1.0..=MAX_QUANTITY).contains(&q)
}

/// The currency-unit value of an automatic event's `custom_data.value`.
pub fn automatic_event_value(raw: &Amount, currency: Option<&str>) -> Option<f64> {
    amount(raw, currency).map(|v| v / AUTOMATIC_EVENT_VALUE_SCALE)
}

/// An [`Amount`] as a number: JSON numbers as they are, text through [`parse_amount`].
pub fn amount(raw: &Amount, currency: Option<&str>) -> Option<f64> {
    match raw {
        Amount::Number(n) => Some(*n).filter(|n| n.is_finite()),
        Amount::Text(text) => parse_amount(text, currency),
    }
}

/// Decimal places of an ISO 4217 currency (2 unless listed).
pub fn minor_units(currency: Option<&str>) -> u32 {
    match currency.map(str::trim) {
        Some(c) => match c.to_ascii_uppercase().as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        },
        None => 2,
    }
}

/// The longest currency decoration read around a number (`"R$ "`, `"USD "`, `" €"`).
const MAX_DECORATION_CHARS: usize = 5;

/// Reads a price written as text, in the currency's conventions.
///
/// Separators: spaces, apostrophes and underscores always group digits. When both `.` and `,`
/// appear, the last one is the decimal separator (`1,299.00`, `1.299,00`). A separator that
/// appears more than once groups digits (`1,299,000`, `1.299.000`). A single separator followed
/// by exactly three digits groups them when the currency has fewer than three decimal places
/// (`"1,299"` and `"1.299"` are 1299 in USD or JPY, 1.299 in KWD); otherwise it is the decimal
/// separator (`"12,50"`, `"12.5"`). A short currency symbol or code before or after the number
/// is ignored. Anything else (words, two numbers, exponents with separators) is `None`.
pub fn parse_amount(text: &str, currency: Option<&str>) -> Option<f64> {
    let trimmed = text.trim();
    let core =
        trimmed.trim_matches(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '.' | ',')));
    if core.is_empty()
        || trimmed.chars().count() - core.chars().count() > MAX_DECORATION_CHARS
        || trimmed
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .is_empty()
    {
        return None;
    }
    let (negative, core) = match core.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, core),
    };
    let digits: String = core
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '\'' | '\u{2019}' | '_')))
        .collect();
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return plain_float(core, negative);
    }
    let decimal_at = decimal_separator(&digits, minor_units(currency))?;
    let integer_part = &digits[..decimal_at.unwrap_or(digits.len())];
    if !groups_are_valid(integer_part) {
        return None;
    }
    let mut number = String::with_capacity(digits.len() + 1);
    for (i, c) in digits.char_indices() {
        match c {
            '0'..='9' => number.push(c),
            _ if Some(i) == decimal_at => number.push('.'),
            _ => {}
        }
    }
    if number.is_empty() || number == "." {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let value = if negative { -value } else { value };
    value.is_finite().then_some(value)
}

/// Where the decimal separator is in a string of digits, `.` and `,`: `Some(None)` when the
/// number has none, `None` when the separators contradict each other (`1.2.3,4`).
fn decimal_separator(digits: &str, minor_units: u32) -> Option<Option<usize>> {
    let last = match (digits.rfind('.'), digits.rfind(',')) {
        (Some(d), Some(c)) => {
            let at = d.max(c);
            // The decimal separator appears once, after every grouping separator.
            return (digits.matches(&digits[at..=at]).count() == 1).then_some(Some(at));
        }
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => return Some(None),
    };
    let separator = &digits[last..=last];
    if digits.matches(separator).count() > 1 {
        return Some(None);
    }
    let decimals = digits.len() - last - 1;
    let integer = &digits[..last];
    let groups_thousands =
        decimals == 3 && !integer.is_empty() && !integer.starts_with('0') && minor_units < 3;
    Some(if groups_thousands { None } else { Some(last) })
}

/// Digit groups of an integer part: the first of 1 to 3 digits, the others of 3 (or 2, as
/// Indian grouping writes lakhs and crores: `1,29,999`).
fn groups_are_valid(integer: &str) -> bool {
    let mut groups = integer.split([',', '.']);
    let first_ok = groups
        .next()
        .is_some_and(|g| g.len() <= 3 || !integer.contains([',', '.']));
    first_ok && groups.all(|g| g.len() == 2 || g.len() == 3)
}

/// A plain float such as `1.2e3`, for the rare system that writes exponents.
fn plain_float(core: &str, negative: bool) -> Option<f64> {
    let value: f64 = core.parse().ok()?;
    let value = if negative { -value } else { value };
    value.is_finite().then_some(value)
}

/// ISO 4217 currency codes (fiat currencies, including ones withdrawn recently but still seen in
/// catalogs), sorted.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG",
    "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
    "ZWL",
];

/// Whether `code` is an ISO 4217 currency code (upper case).
pub fn is_currency_code(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

/// Rounds money to 6 decimal places, removing binary floating-point noise (`0.1 + 0.2`).
pub fn round_money(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_prices_in_the_forms_catalogs_write() {
        let cases: &[(&str, Option<&str>, Option<f64>)] = &[
            ("12.50", Some("USD"), Some(12.5)),
            ("12", Some("USD"), Some(12.0)),
            (" 12.5 ", None, Some(12.5)),
            ("1,299.00", Some("USD"), Some(1299.0)),
            ("1.299,00", Some("EUR"), Some(1299.0)),
            ("1,299", Some("USD"), Some(1299.0)),
            ("1.299", Some("EUR"), Some(1299.0)),
            ("1.299", Some("KWD"), Some(1.299)),
            ("1,299", Some("JPY"), Some(1299.0)),
            ("12,50", Some("EUR"), Some(12.5)),
            ("1 299,00", Some("EUR"), Some(1299.0)),
            ("1\u{a0}299,00", Some("EUR"), Some(1299.0)),
            ("1'299.50", Some("CHF"), Some(1299.5)),
            ("1,299,000", Some("IDR"), Some(1_299_000.0)),
            ("1.299.000", Some("IDR"), Some(1_299_000.0)),
            ("1,29,999.00", Some("INR"), Some(129_999.0)),
            ("₹1,29,999.00", Some("INR"), Some(129_999.0)),
            ("R$ 49,90", Some("BRL"), Some(49.9)),
            ("$12.99", Some("USD"), Some(12.99)),
            ("12.99 USD", Some("USD"), Some(12.99)),
            ("€ 5", Some("EUR"), Some(5.0)),
            (".5", Some("USD"), Some(0.5)),
            ("0.125", Some("USD"), Some(0.125)),
            ("1.5e3", None, Some(1500.0)),
            ("-3.00", None, Some(-3.0)),
            ("", None, None),
            ("free", None, None),
            ("about twelve", None, None),
            ("12 or 13 dollars maybe", None, None),
            ("$", None, None),
            (".", None, None),
            ("1,2,3.4.5", None, None),
            ("NaN", None, None),
            ("inf", None, None),
        ];
        for (text, currency, want) in cases {
            assert_eq!(
                parse_amount(text, *currency),
                *want,
                "{text:?} in {currency:?}"
            );
        }
    }

    #[test]
    fn automatic_event_amounts_are_thousandths() {
        assert_eq!(
            automatic_event_value(&Amount::Number(25000.0), Some("USD")),
            Some(25.0)
        );
        assert_eq!(
            automatic_event_value(&Amount::Text("85500".into()), Some("USD")),
            Some(85.5)
        );
        assert_eq!(
            automatic_event_value(&Amount::Text("n/a".into()), None),
            None
        );
    }

    #[test]
    fn currency_codes_are_iso_4217() {
        assert!(
            ISO_4217.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        for ok in ["USD", "EUR", "BRL", "INR", "IDR", "MXN", "XOF"] {
            assert!(is_currency_code(ok), "{ok}");
        }
        for bad in ["usd", "ABC", "US", "USDT", "XAU", ""] {
            assert!(!is_currency_code(bad), "{bad}");
        }
    }
}
