//! Error text that is safe to log: JSON errors without the input they quote.

/// Describes a `serde_json` error by kind and position only. serde's own messages can quote the
/// offending value (`invalid type: string "+1 650..."`), which may be personal data; the names
/// of missing fields and unknown variants are kept because they carry no input.
pub fn safe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let position = format!("line {} column {}", err.line(), err.column());
    if text.starts_with("missing field") {
        let field = text.split(" at line").next().unwrap_or("missing field");
        format!("{field} at {position}")
    } else {
        format!("{:?} error at {position}", err.classify())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_not_quoted() {
        let err = serde_json::from_str::<u32>(r#""+16505551234""#).expect_err("type error");
        let safe = safe_json_error(&err);
        assert!(!safe.contains("1650"), "{safe}");
        assert_eq!(safe, "Data error at line 1 column 14");
    }

    #[test]
    fn missing_fields_are_named() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            id: String,
        }
        let err = serde_json::from_str::<T>("{}").expect_err("missing");
        assert_eq!(
            safe_json_error(&err),
            "missing field `id` at line 1 column 2"
        );
    }
}
