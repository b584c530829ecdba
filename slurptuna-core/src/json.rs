//! JSON as other programs write it: Python's `json` module writes the bare tokens `NaN`,
//! `Infinity` and `-Infinity`, which strict JSON parsers refuse.

use std::borrow::Cow;

/// Replaces the bare `tokens` (outside JSON strings) of `text` by their replacements; tokens are
/// tried in the order given, so list `-Infinity` before `Infinity`. Borrowed when no token occurs.
///
/// ```
/// use slurptuna_core::json::replace_bare_tokens;
/// let t = r#"{"a": NaN, "b": "NaN", "c": -Infinity}"#;
/// let out = replace_bare_tokens(t, &[("-Infinity", "\"-inf\""), ("NaN", "null")]);
/// assert_eq!(out, r#"{"a": null, "b": "NaN", "c": "-inf"}"#);
/// ```
pub fn replace_bare_tokens<'a>(text: &'a str, tokens: &[(&str, &str)]) -> Cow<'a, str> {
    if !tokens.iter().any(|(t, _)| text.contains(t)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                '\\' => {
                    let take = rest.char_indices().nth(2).map_or(rest.len(), |(i, _)| i);
                    out.push_str(&rest[..take]);
                    rest = &rest[take..];
                    continue;
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some((token, replacement)) = tokens.iter().find(|(t, _)| rest.starts_with(t))
        {
            out.push_str(replacement);
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}
