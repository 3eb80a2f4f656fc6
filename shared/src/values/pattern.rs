//! Patterns in the configuration: regular expressions compiled with a size limit, so a
//! configuration file cannot make a pattern that costs unbounded memory.

use regex::{Regex, RegexBuilder};

/// Compiles `pattern` (case-insensitive when asked), with a 1 MiB size limit; the error names
/// the pattern and what is wrong with it.
pub fn regex(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("pattern {pattern:?} is not a valid regular expression: {e}"))
}
