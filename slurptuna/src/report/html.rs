//! Building the report's HTML: escaping, the page frame and its style sheet, tables.

use std::fmt::Write as _;

use slurptuna_core::ParamValue;

/// Escapes `s` for HTML text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A parameter value as a person reads it: strings without quotes.
pub(crate) fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value at full precision (Rust's shortest round-trip form).
pub(crate) fn num(v: f64) -> String {
    format!("{v}")
}

/// A statistic for reading (4 significant digits).
pub(crate) fn approx(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4e}")
            .parse::<f64>()
            .map_or_else(|_| v.to_string(), |x| x.to_string())
    } else {
        v.to_string()
    }
}

/// An HTML table; every cell is escaped.
pub(crate) fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(s, "<th scope=\"col\">{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A plot (inline SVG) with its caption, or why it could not be drawn.
pub(crate) fn figure(label: &str, svg: Result<String, String>, caption: &str) -> String {
    match svg {
        Ok(svg) => format!(
            "<figure><div class=\"plot\" role=\"img\" aria-label=\"{}\">{svg}</div><figcaption>{}</figcaption></figure>",
            esc(label),
            esc(caption)
        ),
        Err(why) => format!(
            "<p class=\"note\">{}: not drawn ({}).</p>",
            esc(label),
            esc(&why)
        ),
    }
}

const STYLE: &str = r#"
:root { --blue:#0072B2; --vermillion:#D55E00; --orange:#E69F00; --ink:#1a1a1a; --muted:#555; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; margin: 0 auto; max-width: 1000px; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid var(--blue); padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
p.lead { color: var(--muted); margin-top: 0; }
nav ul { columns: 2; padding-left: 1.2rem; }
a { color: var(--blue); }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
td { font-variant-numeric: tabular-nums; word-break: break-word; }
figure { margin: .8rem 0; }
figcaption { color: var(--muted); font-size: .9rem; }
.plot svg { max-width: 100%; height: auto; display: block; }
.slices { display: flex; flex-wrap: wrap; gap: .5rem; }
.slices figure { flex: 1 1 440px; max-width: 480px; }
.best { font-size: 1.15rem; }
.best strong { color: var(--vermillion); }
.note { color: var(--muted); font-style: italic; }
.failed { color: var(--vermillion); font-weight: 600; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  section, figure, table { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// The whole page around `body`, titled `title` (escaped here).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
