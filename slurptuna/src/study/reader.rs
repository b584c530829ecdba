//! [`Reader`]: reads the keys of one table and refuses the ones nobody read (typos).

use std::cell::RefCell;

use super::doc::{suggest, Kind, Located, Origin, Table, Value};

/// The keys of one table, read by name; [`Reader::finish`] reports the first key not read.
pub(crate) struct Reader<'a> {
    table: &'a Table,
    /// The dotted path of the table (`run`, `params.lr`).
    path: String,
    used: RefCell<Vec<bool>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(table: &'a Table, path: impl Into<String>) -> Self {
        Reader {
            table,
            path: path.into(),
            used: RefCell::new(vec![false; table.entries.len()]),
        }
    }

    /// The dotted key of `name` in this table.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// The value of `name` (marked read).
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        let i = self
            .table
            .entries
            .iter()
            .position(|(k, _)| k.name == name)?;
        self.used.borrow_mut()[i] = true;
        Some(&self.table.entries[i].1)
    }

    /// The value of `name` as a table (its origin and entries), or an error at the value.
    pub(crate) fn table(&self, name: &str) -> Result<Option<(&'a Origin, &'a Table)>, Located> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match &v.kind {
            Kind::Table(t) => {
                let origin = self.table.get(name).map_or(&v.origin, |(k, _)| &k.origin);
                Ok(Some((origin, t)))
            }
            other => Err(Located::new(
                &v.origin,
                self.key(name),
                format!("expected a table, got {}", other.type_name()),
            )),
        }
    }

    /// The value of `name` as a string, or an error at the value.
    pub(crate) fn string(&self, name: &str) -> Result<Option<(&'a Value, &'a str)>, Located> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match &v.kind {
                Kind::Str(s) => Ok(Some((v, s.as_str()))),
                other => Err(Located::new(
                    &v.origin,
                    self.key(name),
                    format!("expected a string, got {}", other.type_name()),
                )),
            },
        }
    }

    /// Err for the first key that was not read: an unknown key, with the closest of `known`.
    pub(crate) fn finish(self, known: &[&str]) -> Result<(), Located> {
        let used = self.used.borrow();
        for (i, (key, _)) in self.table.entries.iter().enumerate() {
            if !used[i] {
                return Err(unknown_key(
                    &key.origin,
                    &self.key(&key.name),
                    &key.name,
                    known,
                ));
            }
        }
        Ok(())
    }
}

/// "unknown key (did you mean ...?)" at `origin`, listing `known` when nothing is close.
pub(crate) fn unknown_key(origin: &Origin, key: &str, name: &str, known: &[&str]) -> Located {
    let hint = match suggest(name, known.iter().copied()) {
        Some(k) => format!(" (did you mean {k}?)"),
        None if known.len() <= 12 => format!(" (known keys: {})", known.join(", ")),
        None => String::new(),
    };
    Located::new(origin, key, format!("unknown key{hint}"))
}
