//! The command line protocol on the wire: the request line slurptuna writes, and how a line the
//! command writes is read (a reply, or stray output that goes to the trial's log).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use slurptuna_core::{LossValue, Params};

/// One request: the seeds of one batch of one trial (see the module documentation of
/// `command`). Serialised compactly on one line, fields in this order.
#[derive(Debug, Serialize)]
pub(super) struct Request<'a> {
    pub(super) trial: u64,
    pub(super) entry_id: Option<&'a str>,
    pub(super) params: &'a Params,
    pub(super) seeds: &'a [u64],
}

impl Request<'_> {
    /// The request as one line, newline included.
    pub(super) fn to_line(&self) -> Vec<u8> {
        // A struct of plain values, strings and a map of plain values cannot fail to serialise
        // (NaN floats become `null`).
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }
}

/// What the command said about one seed.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Answer {
    /// A value (possibly NaN: the caller fails the seed with "loss returned NaN").
    Value(LossValue),
    /// The command reported an error for the seed, or returned an infinite value.
    Error(String),
}

/// How one line of the command's stdout reads.
#[derive(Debug, PartialEq)]
pub(super) enum Line {
    /// A reply for `seed`.
    Reply { seed: u64, answer: Answer },
    /// Not a reply (a stray `print`, a blank line, JSON without `"seed"`): goes to the log.
    Stray,
    /// A JSON object with a `"seed"` that is not a valid reply: the protocol is broken.
    Malformed(String),
}

/// Reads one line (without its newline).
pub(super) fn parse_line(raw: &[u8]) -> Line {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Stray;
    };
    let text = text.trim();
    if !text.starts_with('{') {
        return Line::Stray;
    }
    let relaxed = relax(text);
    match serde_json::from_str::<WireReply>(&relaxed) {
        Ok(WireReply { seed: None, .. }) => Line::Stray,
        Ok(WireReply {
            seed: Some(seed),
            error: Some(error),
            ..
        }) => Line::Reply {
            seed,
            answer: Answer::Error(error_text(error)),
        },
        Ok(WireReply {
            seed: Some(seed),
            value: Some(value),
            ..
        }) => Line::Reply {
            seed,
            answer: value.into_answer(),
        },
        Ok(WireReply { seed: Some(_), .. }) => Line::Malformed(format!(
            "reply {} has neither \"value\" nor \"error\"",
            shorten(text)
        )),
        Err(e) => match serde_json::from_str::<serde_json::Value>(&relaxed) {
            Ok(serde_json::Value::Object(m)) if m.contains_key("seed") => {
                Line::Malformed(format!("reply {} is not valid: {e}", shorten(text)))
            }
            _ => Line::Stray,
        },
    }
}

/// At most 200 characters of `text`, for messages.
pub(super) fn shorten(text: &str) -> Cow<'_, str> {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        None => Cow::Borrowed(text),
        Some((i, _)) => Cow::Owned(format!("{}...", &text[..i])),
    }
}

fn error_text(error: serde_json::Value) -> String {
    match error {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Replaces the non-standard tokens Python's `json` writes, outside strings: `NaN` by `null`,
/// `Infinity` and `-Infinity` by the strings `"Infinity"` and `"-Infinity"` (which
/// [`WireValue`] reads as infinities; `slurptuna_core::fs::relax_json` turns all three into
/// `null`, which would lose the sign and the difference between NaN and an infinity).
fn relax(text: &str) -> Cow<'_, str> {
    slurptuna_core::json::replace_bare_tokens(
        text,
        &[
            ("-Infinity", "\"-Infinity\""),
            ("Infinity", "\"Infinity\""),
            ("NaN", "null"),
        ],
    )
}

/// A reply line as sent; unknown fields are ignored.
#[derive(Deserialize)]
struct WireReply {
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    value: Option<WireValue>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// A field that is present (even as `null`, which is a NaN value).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WireValue>, D::Error> {
    WireValue::deserialize(d).map(Some)
}

/// A value as sent: a number, named numbers, or a list of numbers; each number may also be
/// `null` or one of the strings `NaN`, `Infinity`, `-Infinity` (and `Inf`, `-Inf`, `inf`,
/// `-inf`, `nan`).
#[derive(Debug, PartialEq)]
enum WireValue {
    Scalar(f64),
    Components(BTreeMap<String, f64>),
    List(Vec<f64>),
}

/// The number a non-finite spelling stands for.
fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" | "NA" => Some(f64::NAN),
        "Infinity" | "+Infinity" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// One number of a value.
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, null, NaN, Infinity or -Infinity")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
                Ok(Number(f64::NAN))
            }
            fn visit_none<E: de::Error>(self) -> Result<Number, E> {
                Ok(Number(f64::NAN))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                non_finite(v)
                    .map(Number)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, an object of numbers or an array of numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(f64::NAN))
            }
            fn visit_none<E: de::Error>(self) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(f64::NAN))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireValue, E> {
                non_finite(v)
                    .map(WireValue::Scalar)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireValue, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Number(x)) = seq.next_element()? {
                    list.push(x);
                }
                Ok(WireValue::List(list))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireValue, A::Error> {
                let mut components = BTreeMap::new();
                while let Some((name, Number(x))) = map.next_entry::<String, Number>()? {
                    components.insert(name, x);
                }
                Ok(WireValue::Components(components))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Infinity` or `-Infinity`.
fn infinity_name(x: f64) -> &'static str {
    if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

impl WireValue {
    /// The value, or an error when a number is infinite (a loss must be finite; NaN is left to
    /// the caller's NaN check).
    fn into_answer(self) -> Answer {
        let inf = |x: f64| x.is_infinite();
        match self {
            WireValue::Scalar(x) if inf(x) => Answer::Error(format!(
                "returned {} (loss values must be finite)",
                infinity_name(x)
            )),
            WireValue::Components(m) => match m.iter().find(|(_, &x)| inf(x)) {
                Some((name, &x)) => Answer::Error(format!(
                    "returned {} for component '{name}' (loss values must be finite)",
                    infinity_name(x)
                )),
                None => Answer::Value(LossValue::Components(m)),
            },
            WireValue::List(v) => match v.iter().position(|&x| inf(x)) {
                Some(i) => Answer::Error(format!(
                    "returned {} at index {i} of its list (loss values must be finite)",
                    infinity_name(v[i])
                )),
                None => Answer::Value(LossValue::List(v)),
            },
            WireValue::Scalar(x) => Answer::Value(LossValue::Scalar(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> (u64, Answer) {
        match parse_line(line.as_bytes()) {
            Line::Reply { seed, answer } => (seed, answer),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn value(line: &str) -> LossValue {
        match reply(line) {
            (_, Answer::Value(v)) => v,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn requests_are_one_compact_line() {
        let p: Params = [("alpha", 0.31)].into_iter().collect();
        let mut q = p.clone();
        q.insert("kind", "a");
        q.insert("n", 4);
        let r = Request {
            trial: 3,
            entry_id: Some("p01"),
            params: &q,
            seeds: &[0, 1, 2],
        };
        assert_eq!(
            String::from_utf8(r.to_line()).unwrap(),
            "{\"trial\":3,\"entry_id\":\"p01\",\"params\":{\"alpha\":0.31,\"kind\":\"a\",\"n\":4},\"seeds\":[0,1,2]}\n"
        );
        let r = Request {
            trial: 0,
            entry_id: None,
            params: &p,
            seeds: &[7],
        };
        assert!(String::from_utf8(r.to_line())
            .unwrap()
            .contains("\"entry_id\":null"));
    }

    #[test]
    fn values_of_every_shape_are_read_exactly() {
        assert_eq!(
            value(r#"{"seed": 0, "value": 0.1}"#),
            LossValue::Scalar(0.1)
        );
        assert_eq!(reply(r#"{"seed": 5, "value": 3}"#).0, 5);
        assert_eq!(
            value(r#"  {"value": -2, "seed": 1, "extra": [1]}  "#),
            LossValue::Scalar(-2.0)
        );
        assert_eq!(
            value(r#"{"seed": 0, "value": {"p1": 1.5, "p2": 2}}"#),
            LossValue::Components([("p1".to_string(), 1.5), ("p2".to_string(), 2.0)].into())
        );
        assert_eq!(
            value(r#"{"seed": 0, "value": [1, 2.5]}"#),
            LossValue::List(vec![1.0, 2.5])
        );
        let x = 0.1 + 0.2;
        let line = format!(r#"{{"seed": 0, "value": {x:?}}}"#);
        assert_eq!(value(&line), LossValue::Scalar(x));
    }

    #[test]
    fn nan_and_null_are_nan_and_infinities_are_errors() {
        for line in [
            r#"{"seed": 2, "value": NaN}"#,
            r#"{"seed": 2, "value": null}"#,
            r#"{"seed": 2, "value": "NaN"}"#,
        ] {
            assert!(value(line).total().is_nan(), "{line}");
        }
        assert!(value(r#"{"seed": 2, "value": [1, NaN]}"#).total().is_nan());
        assert!(value(r#"{"seed": 2, "value": {"a": null}}"#)
            .total()
            .is_nan());
        for (line, want) in [
            (r#"{"seed": 2, "value": Infinity}"#, "returned Infinity"),
            (r#"{"seed": 2, "value": -Infinity}"#, "returned -Infinity"),
            (r#"{"seed": 2, "value": "-Inf"}"#, "returned -Infinity"),
            (
                r#"{"seed": 2, "value": [1, Infinity]}"#,
                "returned Infinity at index 1",
            ),
            (
                r#"{"seed": 2, "value": {"p1": 1, "p2": -Infinity}}"#,
                "returned -Infinity for component 'p2'",
            ),
        ] {
            match reply(line) {
                (2, Answer::Error(e)) => assert!(e.contains(want), "{line}: {e}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        // Tokens inside strings are left alone.
        assert_eq!(
            reply(r#"{"seed": 1, "error": "NaN Infinity \" NaN"}"#),
            (1, Answer::Error("NaN Infinity \" NaN".into()))
        );
    }

    #[test]
    fn errors_are_replies() {
        assert_eq!(
            reply(r#"{"seed": 4, "error": "diverged"}"#),
            (4, Answer::Error("diverged".into()))
        );
        assert_eq!(
            reply(r#"{"seed": 4, "error": {"code": 3}}"#),
            (4, Answer::Error("{\"code\":3}".into()))
        );
    }

    #[test]
    fn other_lines_are_stray_and_broken_replies_are_malformed() {
        for line in [
            "",
            "   ",
            "hello",
            "[1, 2]",
            "{not json",
            r#"{"value": 1}"#,
            r#"{"epoch": 3, "loss": NaN}"#,
            "\u{fffd}",
        ] {
            assert_eq!(parse_line(line.as_bytes()), Line::Stray, "{line}");
        }
        assert_eq!(parse_line(b"\xff\xfe{"), Line::Stray);
        for line in [
            r#"{"seed": 1}"#,
            r#"{"seed": -1, "value": 1}"#,
            r#"{"seed": 1.5, "value": 1}"#,
            r#"{"seed": 1, "value": true}"#,
            r#"{"seed": 1, "value": "big"}"#,
            r#"{"seed": 1, "value": [1, "x"]}"#,
        ] {
            assert!(
                matches!(parse_line(line.as_bytes()), Line::Malformed(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn long_text_is_shortened() {
        let long = "é".repeat(300);
        let s = shorten(&long);
        assert!(s.ends_with("...") && s.chars().count() == 203, "{s}");
        assert_eq!(shorten("short"), "short");
    }
}
