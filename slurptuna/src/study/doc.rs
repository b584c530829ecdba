//! The study file as a tree of values that remember where they were written: a byte span of the
//! file, or the `--set` that gave them. Every error of the study module is a [`Located`] until it
//! leaves the module, when the span becomes `file:line:column`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::Error;

/// Where a key or value was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Bytes of the study file.
    File(Range<usize>),
    /// The `--set` override with this index.
    Set(usize),
    /// A place in another file the study reads (the `[entries]` CSV).
    Other {
        path: PathBuf,
        line: usize,
        column: usize,
    },
}

impl Origin {
    /// The start of the study file (for what is missing from it).
    pub(crate) fn start() -> Origin {
        Origin::File(0..0)
    }
}

/// A value of the study file, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Value {
    pub(crate) origin: Origin,
    pub(crate) kind: Kind,
    /// For a value given with `--set`: its text as written, so that a key that takes a string
    /// accepts `--set run.mem_per_cpu=1024` or `--set run.slurm_qos=01:00:00` as written.
    pub(crate) set_text: Option<String>,
}

/// The TOML types (integers are `i64`, as TOML says).
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A date, time or date-time; `hms` for a plain local time (`01:30:00`), which duration keys
    /// accept.
    Datetime {
        hms: Option<(u64, u64, u64)>,
    },
    Array(Vec<Value>),
    Table(Table),
}

impl Kind {
    /// The type's name, for "expected X, got Y".
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime { .. } => "a date/time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// A key of a table, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) origin: Origin,
}

/// A table: its entries in the order written (`--set` adds new keys at the end).
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    pub(crate) entries: Vec<(Key, Value)>,
}

impl Table {
    /// The entry `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&(Key, Value)> {
        self.entries.iter().find(|(k, _)| k.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut (Key, Value)> {
        self.entries.iter_mut().find(|(k, _)| k.name == name)
    }
}

/// An error of the study module: what, about which key (dotted, as `--set` takes it), where.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub(crate) origin: Origin,
    pub(crate) key: String,
    pub(crate) message: String,
}

impl Located {
    pub(crate) fn new(origin: &Origin, key: impl Into<String>, message: impl Into<String>) -> Self {
        Located {
            origin: origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What turns a [`Located`] into the facade's error: the study file's path and text, and the
/// `--set` overrides as given.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    pub(crate) overrides: Vec<String>,
}

impl Source {
    /// The facade's error for `e`: [`Error::StudyFile`] for a place in a file,
    /// [`Error::StudyOverride`] for a `--set`.
    pub(crate) fn error(&self, e: Located) -> Error {
        match e.origin {
            Origin::File(span) => {
                let (line, column) = line_column(&self.text, span.start);
                Error::StudyFile {
                    path: self.path.clone(),
                    line,
                    column,
                    key: e.key,
                    message: e.message,
                }
            }
            Origin::Set(i) => Error::StudyOverride {
                set: self.overrides.get(i).cloned().unwrap_or_default(),
                key: e.key,
                message: e.message,
            },
            Origin::Other { path, line, column } => Error::StudyFile {
                path,
                line,
                column,
                key: e.key,
                message: e.message,
            },
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Parses the study file's text into a tree; a syntax error is located at its span.
pub(crate) fn parse_document(text: &str) -> Result<Table, Located> {
    let doc = DeTable::parse(text).map_err(|e| {
        let start = e.span().map_or(0, |s| s.start);
        Located::new(
            &Origin::File(start..start),
            "",
            format!("invalid TOML: {}", e.message()),
        )
    })?;
    convert_table(doc.get_ref(), &|span| Origin::File(span))
}

/// Parses the value of `--set key=value` (index `index`): a TOML value, or else the text as a
/// string.
pub(crate) fn parse_set_value(text: &str, index: usize) -> Value {
    let origin = |_: Range<usize>| Origin::Set(index);
    let doc = format!("v = {text}");
    let parsed = DeTable::parse(&doc).ok().and_then(|t| {
        let t = t.into_inner();
        if t.len() != 1 {
            return None;
        }
        let v = t.get("v")?;
        convert_value(v, &origin).ok()
    });
    let mut value = parsed.unwrap_or_else(|| Value {
        origin: Origin::Set(index),
        kind: Kind::Str(text.to_string()),
        set_text: None,
    });
    value.set_text = Some(text.to_string());
    value
}

fn convert_table(
    table: &DeTable<'_>,
    origin: &dyn Fn(Range<usize>) -> Origin,
) -> Result<Table, Located> {
    let mut out = Table::default();
    for (k, v) in table.iter() {
        let key = Key {
            name: k.get_ref().to_string(),
            origin: origin(k.span()),
        };
        out.entries.push((key, convert_value(v, origin)?));
    }
    Ok(out)
}

fn convert_value(
    v: &Spanned<DeValue<'_>>,
    origin: &dyn Fn(Range<usize>) -> Origin,
) -> Result<Value, Located> {
    let here = origin(v.span());
    let kind = match v.get_ref() {
        DeValue::String(s) => Kind::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Kind::Int(n),
            Err(_) => {
                return Err(Located::new(
                    &here,
                    "",
                    format!("integer {i} is out of range (TOML integers are 64-bit)"),
                ))
            }
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => Kind::Float(x),
            Err(_) => return Err(Located::new(&here, "", format!("invalid float {f}"))),
        },
        DeValue::Boolean(b) => Kind::Bool(*b),
        DeValue::Datetime(d) => {
            let hms = match (&d.date, &d.time, &d.offset) {
                (None, Some(t), None) if t.nanosecond.unwrap_or(0) == 0 => Some((
                    u64::from(t.hour),
                    u64::from(t.minute),
                    u64::from(t.second.unwrap_or(0)),
                )),
                _ => None,
            };
            Kind::Datetime { hms }
        }
        DeValue::Array(items) => Kind::Array(
            items
                .iter()
                .map(|item| convert_value(item, origin))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => Kind::Table(convert_table(t, origin)?),
    };
    Ok(Value {
        origin: here,
        kind,
        set_text: None,
    })
}

/// Applies `--set path=value` (index `index`) to the document: tables on the way are created
/// when missing; the key is replaced or added.
pub(crate) fn apply_set(doc: &mut Table, set: &str, index: usize) -> Result<(), Located> {
    let here = Origin::Set(index);
    let Some((path, text)) = set.split_once('=') else {
        return Err(Located::new(
            &here,
            "",
            "expected key=value, e.g. --set run.n_trials=100",
        ));
    };
    let parts: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(Located::new(
            &here,
            "",
            "name a key of a table, e.g. run.n_trials or params.alpha",
        ));
    }
    let value = parse_set_value(text.trim(), index);
    let (last, tables) = parts.split_last().unwrap_or((&"", &[]));
    let mut table = doc;
    for (depth, name) in tables.iter().enumerate() {
        if table.get(name).is_none() {
            // A table the file does not have: created by this --set, which errors name.
            table.entries.push((
                Key {
                    name: name.to_string(),
                    origin: here.clone(),
                },
                Value {
                    origin: here.clone(),
                    kind: Kind::Table(Table::default()),
                    set_text: None,
                },
            ));
        }
        let Some((_, v)) = table.get_mut(name) else {
            return Err(Located::new(&here, path.trim(), "internal: table vanished"));
        };
        match &mut v.kind {
            Kind::Table(t) => table = t,
            other => {
                return Err(Located::new(
                    &here,
                    parts[..=depth].join("."),
                    format!(
                        "is {}, not a table: cannot set a key inside it",
                        other.type_name()
                    ),
                ))
            }
        }
    }
    let key = Key {
        name: last.to_string(),
        origin: here,
    };
    match table.get_mut(last) {
        Some(entry) => *entry = (key, value),
        None => table.entries.push((key, value)),
    }
    Ok(())
}

/// The known name closest to `name` (a typo: at most a third of its letters off, or the name
/// without a prefix such as `slurm_`), for "did you mean".
pub(crate) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let known: Vec<&str> = known.into_iter().collect();
    let limit = (name.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
        .or_else(|| {
            let suffix = format!("_{name}");
            let mut with_prefix = known.iter().filter(|k| k.ends_with(&suffix));
            match (with_prefix.next(), with_prefix.next()) {
                (Some(k), None) if name.len() >= 3 => Some(*k),
                _ => None,
            }
        })
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `path` made absolute against `base` when it is relative (`./` parts dropped; `..` kept, as
/// symbolic links give it its meaning).
pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path).components().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé = " is 6 bytes, 5 characters.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["n_trials", "n_seeds", "mode"];
        assert_eq!(suggest("n_trails", known), Some("n_trials"));
        assert_eq!(suggest("n_seed", known), Some("n_seeds"));
        assert_eq!(suggest("colour", known), None);
        assert_eq!(suggest("rnu", ["run", "study"]), Some("run"));
        assert_eq!(suggest("rnage", ["range", "step"]), Some("range"));
    }

    #[test]
    fn set_values_are_toml_or_text() {
        let v = parse_set_value("100", 0);
        assert!(matches!(v.kind, Kind::Int(100)));
        let v = parse_set_value("distributed", 0);
        assert!(matches!(&v.kind, Kind::Str(s) if s == "distributed"));
        let v = parse_set_value("01:30:00", 0);
        assert!(matches!(
            v.kind,
            Kind::Datetime {
                hms: Some((1, 30, 0)),
                ..
            }
        ));
        let v = parse_set_value("1 \n x = 2", 0);
        assert!(matches!(&v.kind, Kind::Str(_)));
        let v = parse_set_value("1_000", 0);
        assert!(matches!(v.kind, Kind::Int(1000)));
        let v = parse_set_value("-0x10", 0);
        assert!(matches!(v.kind, Kind::Str(_)), "TOML has no negative hex");
        let v = parse_set_value("[0.5, 2]", 0);
        assert!(matches!(&v.kind, Kind::Array(a) if a.len() == 2));
    }
}
