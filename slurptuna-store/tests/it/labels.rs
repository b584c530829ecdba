use std::path::Path;

use slurptuna_store::{create_versioned_dir, EntryLabel, RunName, StoreError};

#[test]
fn labels_of_hostile_ids_stay_inside_the_parent() {
    let root = tempfile::tempdir().unwrap();
    let parent = create_versioned_dir(root.path(), "toy_entries").unwrap();
    assert!(parent.ends_with("toy_entries_v0001"));
    let ids: Vec<String> = [
        "..",
        ".",
        "",
        "../../x",
        "p/1",
        "p 2",
        "summary.json",
        "...",
        "x\0y",
    ]
    .map(String::from)
    .to_vec();
    let labels = EntryLabel::assign(&ids).unwrap();
    for (id, l) in ids.iter().zip(&labels) {
        let dir = parent.join(l);
        std::fs::create_dir(&dir).unwrap();
        let real = dir.canonicalize().unwrap();
        assert_eq!(
            real.parent(),
            Some(parent.canonicalize().unwrap().as_path()),
            "{id:?}"
        );
        RunName::new(l.as_str()).unwrap();
    }
    assert!(Path::new(&parent).join("entry").is_dir());
    assert!(Path::new(&parent).join("entry_summary.json").is_dir());
}

#[test]
fn colliding_ids_are_refused_naming_both() {
    let ids = vec!["p 1".to_string(), "p2".into(), "p/1".into()];
    match EntryLabel::assign(&ids).unwrap_err() {
        e @ StoreError::LabelCollision { .. } => {
            let msg = e.to_string();
            assert!(
                msg.contains("'p 1'") && msg.contains("'p/1'") && msg.contains("'p_1'"),
                "{msg}"
            );
        }
        other => panic!("unexpected {other}"),
    }
}
