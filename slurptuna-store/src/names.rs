//! Checked directory names: run names and entry labels.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use slurptuna_core::fingerprint_hex;

use crate::error::{Result, StoreError};

/// Longest run name or label accepted (well below the 255-byte limit of common file systems, so
/// the `_vNNNN` suffix and temporary-file prefixes still fit).
pub const MAX_NAME_LEN: usize = 120;

/// File names the entries parent directory uses for itself; labels never take them.
const RESERVED: &[&str] = &[
    "summary.json",
    "meta.json",
    "journal.jsonl",
    "run.lock",
    "trials",
];

fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A run directory's name: one path component of letters, digits, `_`, `-` and `.`, not
/// starting with `.` (so never `.` or `..`), at most [`MAX_NAME_LEN`] bytes. It can never name a
/// directory outside the run root.
///
/// ```
/// use slurptuna_store::RunName;
/// assert_eq!(RunName::new("toy_v0001").unwrap().as_str(), "toy_v0001");
/// assert!(RunName::new("../escape").is_err());
/// assert!(RunName::new("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunName(String);

impl RunName {
    /// Checks `name`; the error says what is wrong and which characters are allowed.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let bad = |reason: String| StoreError::InvalidName {
            name: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(bad(
                "it is empty: give a directory name such as 'fit_v1'".into()
            ));
        }
        if name.starts_with('.') {
            return Err(bad(
                "it starts with '.': '.', '..' and hidden names are not allowed".into(),
            ));
        }
        if let Some(c) = name.chars().find(|c| !is_safe_char(*c)) {
            return Err(bad(format!(
                "it contains {c:?}: use letters, digits, '_', '-' or '.' (it names one directory)"
            )));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad(format!(
                "it is {} bytes long: use at most {MAX_NAME_LEN}",
                name.len()
            )));
        }
        Ok(RunName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RunName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for RunName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl From<EntryLabel> for RunName {
    fn from(l: EntryLabel) -> Self {
        RunName(l.0)
    }
}

/// The directory label of one entry of `optimize_entries`: a sanitised entry id that is always a
/// valid [`RunName`], so it can never leave the parent directory.
///
/// Sanitising (compatible with the original where it was safe): every run of characters outside
/// `[A-Za-z0-9_.-]` becomes one `_`, and `_` is stripped from both ends; then
/// - an empty result becomes `entry`;
/// - a result starting with `.` (including `.` and `..`) or equal to a file name the parent
///   directory uses (`summary.json`, ...) gets the prefix `entry_`;
/// - a result longer than [`MAX_NAME_LEN`] keeps its first 100 characters plus `_` and a
///   16-digit hash of the whole id.
///
/// ```
/// use slurptuna_store::EntryLabel;
/// assert_eq!(EntryLabel::sanitize("p 3").as_str(), "p_3");
/// assert_eq!(EntryLabel::sanitize("p/2").as_str(), "p_2");
/// assert_eq!(EntryLabel::sanitize("..").as_str(), "entry_..");
/// assert_eq!(EntryLabel::sanitize("").as_str(), "entry");
/// let err = EntryLabel::assign(&["a b".to_string(), "a/b".to_string()]).unwrap_err();
/// assert!(err.to_string().contains("'a b'") && err.to_string().contains("'a/b'"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryLabel(String);

impl EntryLabel {
    /// The label of one entry id (see the type's documentation for the rules).
    pub fn sanitize(id: &str) -> EntryLabel {
        let mut s = String::with_capacity(id.len());
        let mut in_bad_run = false;
        for c in id.chars() {
            if is_safe_char(c) {
                s.push(c);
                in_bad_run = false;
            } else if !in_bad_run {
                s.push('_');
                in_bad_run = true;
            }
        }
        let mut s = s.trim_matches('_').to_string();
        if s.is_empty() {
            s = "entry".to_string();
        }
        if s.starts_with('.') || RESERVED.contains(&s.as_str()) {
            s = format!("entry_{s}");
        }
        if s.len() > MAX_NAME_LEN {
            // Only ASCII is left, so byte indices are character boundaries.
            s = format!("{}_{}", &s[..100], fingerprint_hex(id.as_bytes()));
        }
        EntryLabel(s)
    }

    /// Labels for `ids`, in order. Two ids whose labels are equal ignoring case (they would share
    /// a directory, or do so on a case-insensitive file system) are an error naming both ids;
    /// this includes an id given twice.
    pub fn assign<S: AsRef<str>>(ids: &[S]) -> Result<Vec<EntryLabel>> {
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(ids.len());
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let label = EntryLabel::sanitize(id.as_ref());
            if let Some(&j) = seen.get(&label.0.to_ascii_lowercase()) {
                return Err(StoreError::LabelCollision {
                    first: ids[j].as_ref().to_string(),
                    second: id.as_ref().to_string(),
                    label: label.0,
                });
            }
            seen.insert(label.0.to_ascii_lowercase(), i);
            out.push(label);
        }
        Ok(out)
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EntryLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for EntryLabel {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Component;

    #[test]
    fn labels_follow_the_original_where_safe() {
        for (id, want) in [
            ("p01", "p01"),
            ("p 3", "p_3"),
            ("p/2", "p_2"),
            ("__a  b__", "a_b"),
            ("a/../b", "a_.._b"),
            ("x.y-z", "x.y-z"),
            ("é", "entry"),
            ("/", "entry"),
            ("", "entry"),
            (".", "entry_."),
            ("..", "entry_.."),
            ("../..", "entry_.._.."),
            (".hidden", "entry_.hidden"),
            ("summary.json", "entry_summary.json"),
        ] {
            assert_eq!(EntryLabel::sanitize(id).as_str(), want, "id {id:?}");
        }
    }

    #[test]
    fn every_label_is_one_normal_component_and_a_valid_run_name() {
        let long = "x".repeat(500);
        let ids = [
            "",
            ".",
            "..",
            "/",
            "a/b",
            "../../etc",
            "\0",
            "\\..\\",
            &long,
            "日本",
            " . ",
        ];
        for id in ids {
            let l = EntryLabel::sanitize(id);
            let comps: Vec<_> = Path::new(l.as_str()).components().collect();
            assert_eq!(comps.len(), 1, "{id:?} -> {l}");
            assert!(matches!(comps[0], Component::Normal(_)), "{id:?} -> {l}");
            RunName::new(l.as_str()).unwrap();
            assert_eq!(RunName::from(l.clone()).as_str(), l.as_str());
        }
        assert!(EntryLabel::sanitize(&long).as_str().len() <= MAX_NAME_LEN);
        assert_ne!(
            EntryLabel::sanitize(&long),
            EntryLabel::sanitize(&"x".repeat(501))
        );
    }

    #[test]
    fn collisions_name_both_ids() {
        let ids = ["p1", "p 2", "p/2"].map(String::from);
        let e = EntryLabel::assign(&ids).unwrap_err();
        match &e {
            StoreError::LabelCollision {
                first,
                second,
                label,
            } => {
                assert_eq!(
                    (first.as_str(), second.as_str(), label.as_str()),
                    ("p 2", "p/2", "p_2")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(EntryLabel::assign(&["a", "a"]).is_err());
        assert!(EntryLabel::assign(&["Ab", "aB"]).is_err());
        assert!(EntryLabel::assign(&["", "/"]).is_err());
        assert!(EntryLabel::assign(&[".", ".."]).is_ok());
        let ok = EntryLabel::assign(&["p01", "p02", "p 03"]).unwrap();
        let names: Vec<_> = ok.iter().map(EntryLabel::as_str).collect();
        assert_eq!(names, ["p01", "p02", "p_03"]);
    }

    #[test]
    fn run_names_are_checked() {
        for bad in ["", ".", "..", ".x", "a/b", "a b", "a\\b", &"y".repeat(121)] {
            let e = RunName::new(bad).unwrap_err();
            assert!(e.to_string().contains("invalid run name"), "{e}");
        }
        RunName::new("toy-1.2_v0003").unwrap();
    }
}
