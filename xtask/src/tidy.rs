//! Repository rules, checked by `cargo test` (see ARCHITECTURE.md).

use std::path::Path;

use crate::util::project_root;

const BACKENDS: [&str; 4] = [
    "slurptuna-sampler",
    "slurptuna-exec-local",
    "slurptuna-exec-slurm",
    "slurptuna-store",
];
const CRATES: [&str; 6] = [
    "slurptuna-core",
    "slurptuna-sampler",
    "slurptuna-exec-local",
    "slurptuna-exec-slurm",
    "slurptuna-store",
    "slurptuna",
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The crate names in the `[dependencies]` section of a manifest.
fn dependencies(manifest: &str) -> Vec<String> {
    manifest
        .split("\n[")
        .find(|s| s.starts_with("dependencies]"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_lib_rs_opens_with_a_crate_doc() {
    for c in CRATES {
        let path = project_root().join(c).join("src/lib.rs");
        assert!(
            read(&path).starts_with("//!"),
            "{}: must start with a `//!` crate doc",
            path.display()
        );
    }
}

#[test]
fn backends_depend_on_core_only() {
    for c in BACKENDS {
        let deps = dependencies(&read(&project_root().join(c).join("Cargo.toml")));
        assert!(
            deps.iter().any(|d| d == "slurptuna-core"),
            "{c} must depend on slurptuna-core"
        );
        for d in &deps {
            assert!(
                d == "slurptuna-core" || !d.starts_with("slurptuna"),
                "{c} must not depend on {d} (backends depend on core only)"
            );
            assert!(
                d != "anyhow",
                "{c}: anyhow belongs in the CLI and xtask only"
            );
        }
    }
    let core = dependencies(&read(&project_root().join("slurptuna-core/Cargo.toml")));
    for d in &core {
        assert!(
            !(d == "tokio" || d == "anyhow" || d.starts_with("slurptuna")),
            "slurptuna-core must not depend on {d}"
        );
    }
}

#[test]
fn no_stubs_in_library_code() {
    for c in CRATES {
        let src = project_root().join(c).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.map(|e| e.path()).unwrap_or_default();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    for (i, line) in read(&path).lines().enumerate() {
                        for stub in [concat!("todo", "!("), concat!("unimplemented", "!(")] {
                            assert!(
                                !line.contains(stub),
                                "{}:{}: a stub is not done",
                                path.display(),
                                i + 1
                            );
                        }
                    }
                }
            }
        }
    }
}
