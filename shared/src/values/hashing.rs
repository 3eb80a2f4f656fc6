//! Normalisation and SHA-256 hashing of customer information, per Meta's customer information
//! parameter rules: normalise, then lowercase hex SHA-256 of the UTF-8 bytes.
//!
//! Every normaliser is idempotent (normalising its own output changes nothing), values that are
//! already a SHA-256 (64 hex digits) pass through lowercased, and an empty value is an error:
//! Meta must never receive the hash of an empty string.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The 32 bytes a key stands for, for compact in-memory maps: a SHA-256 in hex (event ids,
/// hashed user keys, deduplication ids) decoded, anything else hashed.
pub fn key32(text: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    if hex::decode_to_slice(text, &mut key).is_err() {
        key.copy_from_slice(&Sha256::digest(text.as_bytes()));
    }
    key
}

/// 16 bytes standing for a key, for what is remembered per signal or event (deduplication ids,
/// ledger records): the first half of the text's SHA-256, always hashed (a hex text that is not
/// itself a digest, such as a counter, would otherwise lose its distinct bytes). 128 bits make
/// a collision among even billions of keys vanishingly unlikely (about n² / 2^129).
pub fn key16(text: &str) -> [u8; 16] {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// True when `value` is exactly 64 hex digits (already a SHA-256).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hashed `user_data` keys of the Conversions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserDataKey {
    /// Email address (`em`).
    Em,
    /// Phone number with country code.
    Ph,
    /// First name (`fn`).
    Fn,
    /// Last name (`ln`).
    Ln,
    /// City (`ct`).
    Ct,
    /// State or province code.
    St,
    /// Postal code (`zp`).
    Zp,
    /// ISO 3166-1 alpha-2 country code.
    Country,
    /// Date of birth.
    Db,
    /// Gender (`ge`).
    Ge,
    /// The advertiser's own id for the user.
    ExternalId,
}

impl UserDataKey {
    /// Every key, in wire order.
    pub const ALL: [UserDataKey; 11] = [
        Self::Em,
        Self::Ph,
        Self::Fn,
        Self::Ln,
        Self::Ct,
        Self::St,
        Self::Zp,
        Self::Country,
        Self::Db,
        Self::Ge,
        Self::ExternalId,
    ];

    /// The key's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Em => "em",
            Self::Ph => "ph",
            Self::Fn => "fn",
            Self::Ln => "ln",
            Self::Ct => "ct",
            Self::St => "st",
            Self::Zp => "zp",
            Self::Country => "country",
            Self::Db => "db",
            Self::Ge => "ge",
            Self::ExternalId => "external_id",
        }
    }
}

impl fmt::Display for UserDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserDataKey {
    type Err = NormalizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| NormalizeError::UnknownKey(s.to_owned()))
    }
}

/// Why a value cannot be normalised. Messages never repeat the value itself (it is personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// Not one of the hashed user data keys.
    #[error(
        "unknown user data key {0:?}: expected one of em, ph, fn, ln, ct, st, zp, country, db, ge, external_id"
    )]
    UnknownKey(String),
    /// Nothing left after normalisation.
    #[error("{0}: value is empty after normalisation")]
    Empty(UserDataKey),
    /// The value does not have the key's format.
    #[error("{key}: {why}")]
    Invalid {
        /// The key whose value could not be normalised.
        key: UserDataKey,
        /// What is wrong, without the value.
        why: &'static str,
    },
}

/// Normalises `value` for `key` (a 64-hex value passes through lowercased).
pub fn normalize(key: UserDataKey, value: &str) -> Result<String, NormalizeError> {
    let trimmed = value.trim();
    if is_sha256_hex(trimmed) {
        return Ok(trimmed.to_ascii_lowercase());
    }
    let nfc = nfc(trimmed);
    let out = match key {
        UserDataKey::Em => normalize_email(&nfc)?,
        UserDataKey::Ph => normalize_phone(&nfc).ok_or(NormalizeError::Invalid {
            key,
            why: "a phone number needs 7 to 15 digits including the country code",
        })?,
        UserDataKey::Fn | UserDataKey::Ln | UserDataKey::Ct => letters_only(&nfc),
        // A US state is its 2-letter code (its full name is read as the code); a state
        // outside the US is its name, lowercase, without punctuation or spaces
        // (`New South Wales` → `newsouthwales`): Customer Information Parameters, Jan 9 2026.
        UserDataKey::St => {
            let s = letters_only(&nfc);
            match crate::values::geo::us_state_code(&s) {
                Some(code) => code.to_owned(),
                None => s,
            }
        }
        UserDataKey::Zp => normalize_zip(&nfc),
        // The ISO 3166-1 alpha-2 code, given as the code or the country's name (the page's
        // example: `United States` → `us`).
        UserDataKey::Country => {
            let s = letters_only(&nfc);
            if s.is_empty() {
                s
            } else {
                crate::values::geo::country_code(&s)
                    .ok_or(NormalizeError::Invalid {
                        key,
                        why: "use the ISO 3166-1 alpha-2 country code (or the country's English name)",
                    })?
                    .to_owned()
            }
        }
        UserDataKey::Db => normalize_date_of_birth(&nfc)?,
        UserDataKey::Ge => match nfc.to_lowercase().chars().next() {
            None => String::new(),
            Some(c @ ('f' | 'm')) => c.to_string(),
            Some(_) => {
                return Err(NormalizeError::Invalid {
                    key,
                    why: "gender must be f or m",
                });
            }
        },
        UserDataKey::ExternalId => nfc.into_owned(),
    };
    if out.is_empty() {
        return Err(NormalizeError::Empty(key));
    }
    Ok(out)
}

/// Normalises and hashes `value` for `key`.
pub fn hash(key: UserDataKey, value: &str) -> Result<String, NormalizeError> {
    let normalized = normalize(key, value)?;
    Ok(if is_sha256_hex(&normalized) {
        normalized
    } else {
        sha256_hex(normalized.as_bytes())
    })
}

/// A phone number's SHA-256 in each destination's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneHashes {
    /// Of the digits with the country code (Meta's `ph`).
    pub digits: String,
    /// Of the E.164 form, `+` and the digits (TikTok's `phone`).
    pub e164: String,
}

/// Hashes a phone number for every destination; `None` when it is no phone number
/// ([`normalize_phone`]).
pub fn hash_phone(raw: &str) -> Option<PhoneHashes> {
    let digits = normalize_phone(raw)?;
    Some(PhoneHashes {
        e164: sha256_hex(format!("+{digits}").as_bytes()),
        digits: sha256_hex(digits.as_bytes()),
    })
}

/// A phone number as digits only, leading zeros (international `00` prefix) dropped.
/// `None` unless 7 to 15 digits remain (E.164 allows at most 15).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    (7..=15).contains(&digits.len()).then(|| digits.to_owned())
}

fn normalize_email(value: &str) -> Result<String, NormalizeError> {
    let email = lower_nfc(value);
    let invalid = |why| NormalizeError::Invalid {
        key: UserDataKey::Em,
        why,
    };
    if email.is_empty() {
        return Ok(email);
    }
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or(invalid("an email needs an @"))?;
    if local.is_empty() || local.contains('@') {
        return Err(invalid("an email needs exactly one @ after a local part"));
    }
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    if !labels_ok {
        return Err(invalid(
            "an email's domain needs a dot between non-empty labels",
        ));
    }
    if email.chars().any(char::is_whitespace) {
        return Err(invalid("an email cannot contain spaces"));
    }
    Ok(email)
}

/// `value` in Unicode NFC. ASCII text is already in NFC (most names, emails and cities), so it
/// is borrowed as is: composing costs more than the hash.
fn nfc(value: &str) -> Cow<'_, str> {
    if value.is_ascii() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.nfc().collect())
    }
}

/// Lowercased letters only (any script): drops spaces, punctuation, digits and symbols.
fn letters_only(value: &str) -> String {
    if value.is_ascii() {
        return value
            .bytes()
            .filter(u8::is_ascii_alphabetic)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
    }
    // Recompose after filtering: dropping a space can leave combining marks side by side, which
    // NFC reorders; without this a second normalisation would change the value.
    lower_nfc(value)
        .chars()
        .filter(|c| c.is_alphabetic())
        .nfc()
        .collect()
}

/// Lowercases, then re-composes: lowercasing can leave a decomposed sequence (`İ` → `i̇`).
fn lower_nfc(value: &str) -> String {
    if value.is_ascii() {
        return value.to_ascii_lowercase();
    }
    value.to_lowercase().nfc().collect()
}

fn normalize_zip(value: &str) -> String {
    let compact: String = if value.is_ascii() {
        value
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect()
    } else {
        lower_nfc(value)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .nfc()
            .collect()
    };
    // US ZIP+4 (`94025-1234` or `940251234`): Meta matches on the first 5 digits.
    let is_zip_plus_4 =
        compact.len() == 9 && compact.bytes().all(|b| b.is_ascii_digit()) && !value.contains(' ');
    if is_zip_plus_4 {
        compact[..5].to_owned()
    } else {
        compact
    }
}

fn normalize_date_of_birth(value: &str) -> Result<String, NormalizeError> {
    let invalid = NormalizeError::Invalid {
        key: UserDataKey::Db,
        why: "a date of birth must be YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY",
    };
    let parts: Vec<&str> = value
        .split(['-', '/', '.', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    let (y, m, d) = match parts.as_slice() {
        // Only all-ASCII-digit strings are sliced by byte position.
        [ymd] if ymd.len() == 8 && ymd.bytes().all(|b| b.is_ascii_digit()) => {
            (&ymd[..4], &ymd[4..6], &ymd[6..])
        }
        [y, m, d] if y.len() == 4 => (*y, *m, *d),
        [m, d, y] if y.len() == 4 => (*y, *m, *d),
        [] => return Ok(String::new()),
        _ => return Err(invalid),
    };
    let num = |s: &str| s.parse::<u32>().ok();
    match (num(y), num(m), num(d)) {
        (Some(y), Some(m), Some(d))
            if (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d) =>
        {
            Ok(format!("{y:04}{m:02}{d:02}"))
        }
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_keys_differ_for_digests_counters_and_text_alike() {
        let texts: std::collections::HashSet<String> = (0..1_000u64)
            .flat_map(|i| {
                [
                    format!("{i:064x}"),
                    format!("{:064x}", u128::from(i) << 64),
                    sha256_hex(&i.to_le_bytes()),
                    format!("wamid.{i}"),
                ]
            })
            .collect();
        let keys: std::collections::HashSet<[u8; 16]> = texts.iter().map(|t| key16(t)).collect();
        assert_eq!(keys.len(), texts.len());
        assert!(texts.len() > 3_990);
    }

    #[test]
    fn documented_vectors() {
        assert_eq!(
            hash(UserDataKey::Em, "John_Smith@gmail.com").as_deref(),
            Ok("62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f")
        );
        assert_eq!(
            hash(UserDataKey::Ph, "+1 (650)555-1212").as_deref(),
            Ok("e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176")
        );
        assert_eq!(
            hash(UserDataKey::Fn, "Mary").as_deref(),
            Ok("6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec")
        );
        // The rest of the page's hashed examples (Customer Information Parameters, Jan 9 2026).
        let vectors = [
            (
                UserDataKey::Fn,
                "정",
                "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14",
            ),
            (
                UserDataKey::Fn,
                "Valéry",
                "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
            ),
            (
                UserDataKey::Db,
                "2/16/1997",
                "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c",
            ),
            (
                UserDataKey::Country,
                "United States",
                "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
            ),
        ];
        for (key, input, want) in vectors {
            assert_eq!(hash(key, input).as_deref(), Ok(want), "{key} {input:?}");
        }
    }

    /// Every example of Meta's Customer Information Parameters page (Jan 9 2026) that gives an
    /// input or a normalised form, plus the non-US states the page describes in words.
    #[test]
    fn the_page_s_examples_and_states_outside_the_us() {
        let cases = [
            // st: "Use the 2-character ANSI abbreviation code in lowercase. Normalize states
            // outside the U.S. in lowercase with no punctuation, no special characters, and
            // no spaces."
            (UserDataKey::St, "AZ", "az"),
            (UserDataKey::St, "ca", "ca"),
            (UserDataKey::St, "California", "ca"),
            (UserDataKey::St, "New South Wales", "newsouthwales"),
            (UserDataKey::St, "Île-de-France", "îledefrance"),
            (UserDataKey::St, "Nuevo León", "nuevoleón"),
            (UserDataKey::St, "N.S.W.", "nsw"),
            // ct: lowercase, no punctuation, no special characters, no spaces.
            (UserDataKey::Ct, "Paris", "paris"),
            (UserDataKey::Ct, "London", "london"),
            (UserDataKey::Ct, "New York", "newyork"),
            (UserDataKey::Ct, "São Paulo", "sãopaulo"),
            // zp: lowercase, no spaces, no dash; US first 5 digits; UK area, district, sector.
            (UserDataKey::Zp, "94035", "94035"),
            (UserDataKey::Zp, "1987", "1987"),
            (UserDataKey::Zp, "75018", "75018"),
            (UserDataKey::Zp, "M1 1AE", "m11ae"),
            // country: ISO 3166-1 alpha-2, lowercase.
            (UserDataKey::Country, "United States", "us"),
            (UserDataKey::Country, "FR", "fr"),
            (UserDataKey::Country, "united kingdom", "gb"),
            // db: YYYYMMDD from a range of formats.
            (UserDataKey::Db, "2/16/1997", "19970216"),
            // ge: the initial, lowercase.
            (UserDataKey::Ge, "f", "f"),
            (UserDataKey::Ge, "M", "m"),
        ];
        for (key, input, want) in cases {
            assert_eq!(
                normalize(key, input).as_deref(),
                Ok(want),
                "{key} {input:?}"
            );
        }
        assert_eq!(
            hash(UserDataKey::St, "New South Wales").as_deref(),
            Ok(sha256_hex(b"newsouthwales").as_str())
        );
    }

    #[test]
    fn documented_normalisations() {
        let cases = [
            (
                UserDataKey::Em,
                " John_Smith@gmail.com ",
                "john_smith@gmail.com",
            ),
            (UserDataKey::Ph, "+1 (650)555-1212", "16505551212"),
            (UserDataKey::Ph, "0044 844 412 4653", "448444124653"),
            (UserDataKey::Fn, "Valéry", "valéry"),
            (UserDataKey::Ln, "O'Brien-Smith", "obriensmith"),
            (UserDataKey::Ct, "New York", "newyork"),
            (UserDataKey::St, "AZ", "az"),
            (UserDataKey::Zp, "94035-1234", "94035"),
            (UserDataKey::Zp, "M1 1AE", "m11ae"),
            (UserDataKey::Country, "US", "us"),
            (UserDataKey::Db, "2/16/1997", "19970216"),
            (UserDataKey::Db, "1997-02-16", "19970216"),
            (UserDataKey::Db, "19970216", "19970216"),
            (UserDataKey::Ge, "Female", "f"),
            (UserDataKey::ExternalId, " crm-42 ", "crm-42"),
        ];
        for (key, input, want) in cases {
            assert_eq!(
                normalize(key, input).as_deref(),
                Ok(want),
                "{key} {input:?}"
            );
        }
    }

    #[test]
    fn composed_and_decomposed_names_hash_alike() {
        let composed = "Val\u{e9}ry";
        let decomposed = "Vale\u{301}ry";
        assert_ne!(composed, decomposed);
        assert_eq!(
            hash(UserDataKey::Fn, composed),
            hash(UserDataKey::Fn, decomposed)
        );
    }

    #[test]
    fn hashes_pass_through_lowercased() {
        let h = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F";
        assert_eq!(hash(UserDataKey::Em, h), Ok(h.to_ascii_lowercase()));
    }

    #[test]
    fn empty_and_invalid_values_are_errors() {
        assert_eq!(
            hash(UserDataKey::Fn, "  "),
            Err(NormalizeError::Empty(UserDataKey::Fn))
        );
        assert_eq!(
            hash(UserDataKey::Fn, "!!"),
            Err(NormalizeError::Empty(UserDataKey::Fn))
        );
        for bad in ["no-at", "a@b", "@b.com", "a@@b.com", "a b@c.com"] {
            assert!(hash(UserDataKey::Em, bad).is_err(), "{bad}");
        }
        assert!(hash(UserDataKey::Ph, "12345").is_err());
        assert!(hash(UserDataKey::Country, "Atlantis").is_err());
        assert!(hash(UserDataKey::Country, "zz").is_err());
        assert!(hash(UserDataKey::Db, "1997-13-01").is_err());
        // Found by the property test: combining marks brought together by dropping a space.
        let once = normalize(UserDataKey::Fn, "\u{1abf} \u{16ff0}").expect("letters");
        assert_eq!(normalize(UserDataKey::Fn, &once), Ok(once.clone()));
        // Found by the property test: 8 bytes that are not 8 ASCII digits must not be sliced.
        assert!(hash(UserDataKey::Db, "6\\\u{d47}Sx\\").is_err());
        assert!(hash(UserDataKey::Ge, "x").is_err());
        assert!("zz".parse::<UserDataKey>().is_err());
    }

    #[test]
    fn errors_never_repeat_the_value() {
        let err = hash(UserDataKey::Em, "secret.person-at-example.com")
            .expect_err("invalid")
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    proptest! {
        /// The ASCII fast paths give what the Unicode paths give.
        #[test]
        fn ascii_fast_paths_match_the_unicode_paths(value in "[ -~]{0,40}") {
            let general_lower: String = value.to_lowercase().nfc().collect();
            prop_assert_eq!(lower_nfc(&value), general_lower.clone());
            let letters: String = general_lower.chars().filter(|c| c.is_alphabetic()).nfc().collect();
            prop_assert_eq!(letters_only(&value), letters);
            let alnum: String = general_lower.chars().filter(|c| c.is_alphanumeric()).collect();
            let zip = normalize_zip(&value);
            prop_assert!(zip == alnum || (alnum.len() == 9 && zip == alnum[..5]));
            prop_assert_eq!(nfc(&value).into_owned(), value.nfc().collect::<String>());
        }

        #[test]
        fn normalising_twice_changes_nothing(key_idx in 0usize..11, value in "\\PC{0,40}") {
            let key = UserDataKey::ALL[key_idx];
            if let Ok(once) = normalize(key, &value) {
                prop_assert_eq!(normalize(key, &once), Ok(once.clone()));
            }
        }

        #[test]
        fn hashing_is_idempotent_on_its_output(key_idx in 0usize..11, value in "\\PC{0,40}") {
            let key = UserDataKey::ALL[key_idx];
            if let Ok(h) = hash(key, &value) {
                prop_assert!(is_sha256_hex(&h));
                prop_assert_eq!(hash(key, &h), Ok(h.clone()));
            }
        }

        #[test]
        fn phone_formats_agree(cc in 1u32..999, rest in 1_000_000u64..9_999_999_999) {
            let plain = format!("{cc}{rest}");
            let pretty = format!("+{cc} ({rest})");
            let intl = format!("00{cc}-{rest}");
            prop_assume!(plain.len() <= 15);
            prop_assert_eq!(hash(UserDataKey::Ph, &plain), hash(UserDataKey::Ph, &pretty));
            prop_assert_eq!(hash(UserDataKey::Ph, &plain), hash(UserDataKey::Ph, &intl));
        }
    }
}
