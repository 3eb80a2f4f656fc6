//! `X-Hub-Signature-256` verification: HMAC-SHA256 of the exact received bytes with the app
//! secret, compared in constant time.
//!
//! The HMAC is taken over the raw body before any parsing: Meta signs the ASCII-escaped JSON it
//! sends (`é` travels as `\u00e9`), so re-serialising a parsed body would not verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (a legacy `X-Hub-Signature: sha1=` alone does not count).
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("the X-Hub-Signature-256 header is malformed")]
    Malformed,
    /// Well-formed, but not the HMAC of this body with this secret.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// A short label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// A parsed `sha256=<hex>` header value: the 32-byte digest it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedSignature([u8; 32]);

impl ClaimedSignature {
    /// Parses the header's values as a request carries them: none is `Missing`, more than one
    /// (or one that joins several with commas, as API Gateway does) is `Malformed`, so a request
    /// never gets to choose which claim is checked.
    pub fn from_headers(values: &[&[u8]]) -> Result<Self, SignatureError> {
        match values {
            [] => Err(SignatureError::Missing),
            [one] => Self::parse(Some(one)),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Parses the header value; `None` means the header was absent.
    pub fn parse(header: Option<&[u8]>) -> Result<Self, SignatureError> {
        let value = header.ok_or(SignatureError::Missing)?;
        let value = value.trim_ascii();
        let hex_digits = value
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(SignatureError::Malformed)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| SignatureError::Malformed)?;
        Ok(Self(digest))
    }

    /// Checks the claim against the body with `secret`, in constant time.
    pub fn verify(&self, secret: &[u8], body: &[u8]) -> Result<(), SignatureError> {
        hmac_sha256(secret, body)
            .verify_slice(&self.0)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 over the concatenation of `parts`, keyed with `secret`.
pub(crate) fn hmac_sha256_parts(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length (longer ones are hashed first), so `InvalidLength`
    // cannot occur for `Hmac<Sha256>`.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

fn hmac_sha256(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    hmac_sha256_parts(secret, &[body])
}

/// The `X-Hub-Signature-256` value Meta would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "{PREFIX}{}",
        hex::encode(hmac_sha256(secret, body).finalize().into_bytes())
    )
}

/// Parses and verifies in one step.
pub fn verify(header: Option<&[u8]>, secret: &[u8], body: &[u8]) -> Result<(), SignatureError> {
    ClaimedSignature::parse(header)?.verify(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-app-secret";

    #[test]
    fn valid_signature_verifies() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let sig = sign(SECRET, body);
        assert_eq!(verify(Some(sig.as_bytes()), SECRET, body), Ok(()));
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let body = b"{}";
        let sig = sign(SECRET, body)
            .to_uppercase()
            .replace("SHA256=", "sha256=");
        assert_eq!(verify(Some(sig.as_bytes()), SECRET, body), Ok(()));
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            "sha256=",
            "sha256=zz",
            "sha1=0000000000000000000000000000000000000000",
            "sha256=abcd",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ] {
            assert_eq!(
                verify(Some(bad.as_bytes()), SECRET, b"{}"),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(verify(None, SECRET, b"{}"), Err(SignatureError::Missing));
    }
}
