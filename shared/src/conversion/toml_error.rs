//! A configuration file that does not parse, told so that it can be fixed without leaking what
//! it holds: the line number, the column and the offending line's text, with the value of any key
//! named like a secret (token, secret, key, password, pass, auth, credential) replaced by
//! `<redacted>`. toml's own message quotes the line whole, and a serde type error quotes the
//! value, so a pasted access token would reach check-config's output and the Lambda's cold-start
//! log; this one never does.

/// Key names whose values are never printed: a name containing any of these (any case).
pub const SECRET_KEY_WORDS: [&str; 7] = [
    "token",
    "secret",
    "key",
    "password",
    "pass",
    "auth",
    "credential",
];

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// The longest line quoted (characters); a longer one is cut, so a minified file cannot fill
/// a log line.
const MAX_LINE_CHARS: usize = 200;

/// True for a key name that may hold a secret.
pub fn is_secret_key(name: &str) -> bool {
    let name = name.trim().trim_matches(|c| c == '"' || c == '\'');
    let lower = name.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| lower.contains(w))
}

/// The message of a TOML parse error of `text`: `line L, column C: <what>`, then the line as
/// `L | <text>` with secret values redacted.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return format!("TOML parse error: {message}");
    };
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_no = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let line = text[line_start..line_end].trim_end_matches('\r');
    let secret_context = owner_is_secret(text, line_start);
    let (shown, redacted) = redact_line(line, secret_context);
    // A type error quotes the value it could not read: never when the line holds a secret.
    let message = if redacted {
        scrub_quoted(message)
    } else {
        message.to_owned()
    };
    let shown: String = if shown.chars().count() > MAX_LINE_CHARS {
        shown
            .chars()
            .take(MAX_LINE_CHARS)
            .chain("…".chars())
            .collect()
    } else {
        shown
    };
    format!(
        "TOML parse error at line {line_no}, column {column}: {message}\n    {line_no} | {shown}"
    )
}

/// The largest char boundary at or before `i`.
fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The line with the value of every secret key replaced, and whether anything was. A line that
/// continues a value begun above (a multi-line array or string) under a secret key is replaced
/// whole (`secret_context`).
fn redact_line(line: &str, secret_context: bool) -> (String, bool) {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') {
        return (line.to_owned(), false);
    }
    if secret_context && assigned_key(line).is_none() && !trimmed.starts_with('[') {
        return (REDACTED.to_owned(), true);
    }
    // Every `name =` on the line (an inline table has several): from the first secret one on,
    // the rest of the line is hidden.
    let mut search = 0;
    while let Some(offset) = line[search..].find('=') {
        let eq = search + offset;
        let before = &line[..eq];
        let name_start = before.rfind(['{', ',', '[']).map_or(0, |i| i + 1);
        let name = before[name_start..].trim();
        let last = name.rsplit('.').next().unwrap_or(name);
        if !name.is_empty() && (is_secret_key(last) || name.split('.').any(is_secret_key)) {
            return (format!("{} {REDACTED}", &line[..=eq]), true);
        }
        search = eq + 1;
    }
    (line.to_owned(), false)
}

/// The key a line assigns (`name = ...`), if it starts with one.
fn assigned_key(line: &str) -> Option<&str> {
    let (name, _) = line.split_once('=')?;
    let name = name.trim();
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '));
    (plain && !name.is_empty()).then_some(name)
}

/// Whether the line at `line_start` continues a value assigned above it to a secret key: the
/// nearest line above that assigns a key names a secret, and its value is still open (more
/// brackets or triple quotes opened than closed up to this line).
fn owner_is_secret(text: &str, line_start: usize) -> bool {
    let above = &text[..line_start];
    let Some((owner_at, key)) = above
        .lines()
        .enumerate()
        .filter_map(|(i, l)| assigned_key(l).map(|k| (i, k)))
        .last()
    else {
        return false;
    };
    if !is_secret_key(key.rsplit('.').next().unwrap_or(key)) {
        return false;
    }
    let between: String = above.lines().skip(owner_at).collect::<Vec<_>>().join("\n");
    let open = between.matches('[').count() + between.matches('{').count();
    let close = between.matches(']').count() + between.matches('}').count();
    open > close
        || between.matches("\"\"\"").count() % 2 == 1
        || between.matches("'''").count() % 2 == 1
}

/// A message with every quoted or back-quoted part replaced (serde's type errors quote the
/// value); a one-character part is syntax (toml's "expected `\"`"), kept.
fn scrub_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '`' {
            let inner: String = chars.by_ref().take_while(|i| *i != c).collect();
            if inner.chars().count() <= 1 {
                out.push(c);
                out.push_str(&inner);
                out.push(c);
            } else {
                out.push_str(REDACTED);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match toml::from_str::<toml::Table>(text) {
            Ok(_) => String::new(),
            Err(e) => describe(text, &e),
        }
    }

    #[test]
    fn lines_are_redacted_by_key_name() {
        for (line, want) in [
            (r#"token = "EAAGabc"#, "token = <redacted>"),
            (r#"  app_secret="s3cr3t" x"#, "  app_secret= <redacted>"),
            (
                r#"tiktok = { token = "abc", x"#,
                "tiktok = { token = <redacted>",
            ),
            (
                r#"accounts.auth_header = 1 2"#,
                "accounts.auth_header = <redacted>",
            ),
            (r#"dataset_id = "123" 4"#, r#"dataset_id = "123" 4"#),
        ] {
            assert_eq!(redact_line(line, false).0, want, "{line}");
        }
        assert_eq!(redact_line(r#""EAAGabc"x"#, true).0, REDACTED);
        assert_eq!(redact_line("[[rules]", true).0, "[[rules]");
    }

    #[test]
    fn only_quoted_values_are_scrubbed_from_the_message() {
        assert_eq!(
            scrub_quoted(r#"invalid type: string "EAAG123", expected `"`"#),
            r#"invalid type: string <redacted>, expected `"`"#
        );
    }

    #[test]
    fn a_secret_continuation_line_is_hidden() {
        let text = "graph_api_version = \"v27.0\"\naccess_tokens = [\n  \"EAAG123\" \"x\",\n]\n";
        let message = error_of(text);
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("EAAG123"), "{message}");
    }
}
