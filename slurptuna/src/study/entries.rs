//! `[entries]`: the entry ids, listed (`ids = [...]`) or read from a column of a CSV file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::doc::{line_column, resolve, Kind, Located, Origin, Table};
use super::reader::Reader;

const ENTRIES_KEYS: &[&str] = &["ids", "csv", "column"];

/// The entry ids of `[entries]`, unique, in the order given.
pub(crate) fn read_entries(
    t: &Table,
    origin: &Origin,
    base_dir: &Path,
    given_dir: &Path,
) -> Result<Vec<String>, Located> {
    let r = Reader::new(t, "entries");
    let ids = r.get("ids");
    let csv = r.string("csv")?;
    let column = r.string("column")?;
    r.finish(ENTRIES_KEYS)?;
    match (ids, csv, column) {
        (Some(_), Some((v, _)), _) => Err(Located::new(
            &v.origin,
            "entries.csv",
            "give ids or csv, not both",
        )),
        (Some(_), None, Some((c, _))) => Err(Located::new(
            &c.origin,
            "entries.column",
            "column names the CSV column of the ids: it goes with csv = \"file.csv\"",
        )),
        (Some(v), None, None) => {
            let Kind::Array(items) = &v.kind else {
                return Err(Located::new(
                    &v.origin,
                    "entries.ids",
                    format!("expected an array of ids, got {}", v.kind.type_name()),
                ));
            };
            if items.is_empty() {
                return Err(Located::new(&v.origin, "entries.ids", "must not be empty"));
            }
            let mut out: Vec<String> = Vec::new();
            for item in items {
                let id = match &item.kind {
                    Kind::Str(s) => s.clone(),
                    Kind::Int(n) => n.to_string(),
                    other => {
                        return Err(Located::new(
                            &item.origin,
                            "entries.ids",
                            format!("an id is a string (or an integer), got {}", other.type_name()),
                        ))
                    }
                };
                if id.trim().is_empty() {
                    return Err(Located::new(&item.origin, "entries.ids", "an id is empty"));
                }
                if out.contains(&id) {
                    return Err(Located::new(
                        &item.origin,
                        "entries.ids",
                        format!("duplicate id {id:?}: ids must be unique"),
                    ));
                }
                out.push(id);
            }
            Ok(out)
        }
        (None, Some((v, file)), column) => {
            let Some((_, column)) = column else {
                return Err(Located::new(
                    &v.origin,
                    "entries.column",
                    "missing key column: the CSV column that holds the ids, e.g. column = \"participant_id\"",
                ));
            };
            let path = resolve(base_dir, Path::new(file));
            let shown = if Path::new(file).is_absolute() {
                PathBuf::from(file)
            } else {
                given_dir.join(file)
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Located::new(
                    &v.origin,
                    "entries.csv",
                    format!("cannot read {}: {e}", shown.display()),
                )
            })?;
            read_csv_ids(&text, &shown, column)
        }
        (None, None, _) => Err(Located::new(
            origin,
            "entries",
            "give the entry ids: ids = [\"p01\", \"p02\"], or csv = \"file.csv\" with column = \"participant_id\"",
        )),
    }
}

/// The ids in column `column` of the CSV `text` (the file `shown`), each row's, unique.
fn read_csv_ids(text: &str, shown: &Path, column: &str) -> Result<Vec<String>, Located> {
    let at = |offset: usize| {
        let (line, column) = line_column(text, offset);
        Origin::Other {
            path: shown.to_path_buf(),
            line,
            column,
        }
    };
    let csv_error = |e: csv::Error| {
        let offset = e.position().map_or(0, |p| p.byte() as usize);
        Located::new(&at(offset), "entries.csv", format!("invalid CSV: {e}"))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(csv_error)?.clone();
    if headers.is_empty() || text.trim().is_empty() {
        return Err(Located::new(
            &at(0),
            "entries.csv",
            format!("the file is empty: expected a header line naming the column {column:?}, then one row per entry"),
        ));
    }
    let Some(index) = headers.iter().position(|h| h == column) else {
        return Err(Located::new(
            &at(0),
            "entries.column",
            format!(
                "no column {column:?} in the header (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let mut ids: Vec<String> = Vec::new();
    let mut first_line: BTreeMap<String, u64> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let (offset, line) = record
            .position()
            .map_or((0, 0), |p| (p.byte() as usize, p.line()));
        let id = record.get(index).unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(Located::new(
                &at(offset),
                "entries.csv",
                format!("the id (column {column:?}) is empty"),
            ));
        }
        if let Some(first) = first_line.get(&id) {
            return Err(Located::new(
                &at(offset),
                "entries.csv",
                format!("duplicate id {id:?} (first on line {first}): ids must be unique"),
            ));
        }
        first_line.insert(id.clone(), line);
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(Located::new(
            &at(text.len()),
            "entries.csv",
            "no rows after the header: one row per entry",
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, column: &str) -> (usize, String, String) {
        let e = read_csv_ids(text, Path::new("p.csv"), column).unwrap_err();
        match e.origin {
            Origin::Other { line, .. } => (line, e.key, e.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn csv_ids_are_read_and_checked() {
        let ok = read_csv_ids("id,a\np1,1\n p2 ,2\n", Path::new("p.csv"), "id").unwrap();
        assert_eq!(ok, ["p1", "p2"]);
        let (line, key, msg) = err("id,a\np1,1\np1,2\n", "id");
        assert_eq!((line, key.as_str()), (3, "entries.csv"));
        assert!(
            msg.contains("duplicate id \"p1\" (first on line 2)"),
            "{msg}"
        );
        let (line, key, msg) = err("id,a\np1,1\n", "participant_id");
        assert_eq!((line, key.as_str()), (1, "entries.column"));
        assert!(msg.contains("columns: id, a"), "{msg}");
        let (line, _, msg) = err("", "id");
        assert_eq!(line, 1);
        assert!(msg.contains("empty"), "{msg}");
        let (line, _, msg) = err("id,a\n", "id");
        assert_eq!(line, 2);
        assert!(msg.contains("no rows"), "{msg}");
        let (line, _, msg) = err("id,a\np1,1\np2\n", "id");
        assert_eq!(line, 3, "{msg}");
    }
}
