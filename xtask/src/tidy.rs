//! Repository rules, checked by `cargo test` (see ARCHITECTURE.md).

use std::path::Path;

use crate::util::project_root;

/// The workspace members, read from the root manifest (so a new crate is covered without
/// editing this file).
fn members() -> Vec<String> {
    let manifest = read(&project_root().join("Cargo.toml"));
    let start = manifest
        .find("members = [")
        .expect("the root manifest lists its members");
    let list = &manifest[start..];
    let end = list.find(']').expect("the members list is closed");
    list[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every library crate of the workspace.
fn crates() -> Vec<String> {
    members().into_iter().filter(|m| m != "xtask").collect()
}

/// The backends: every crate but core and the facade.
fn backends() -> Vec<String> {
    crates()
        .into_iter()
        .filter(|c| c != "slurptuna-core" && c != "slurptuna")
        .collect()
}

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
    for c in crates() {
        let path = project_root().join(&c).join("src/lib.rs");
        assert!(
            read(&path).starts_with("//!"),
            "{}: must start with a `//!` crate doc",
            path.display()
        );
    }
}

#[test]
fn backends_depend_on_core_only() {
    for c in backends() {
        let deps = dependencies(&read(&project_root().join(&c).join("Cargo.toml")));
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
    let core = read(&project_root().join("slurptuna-core/Cargo.toml"));
    for d in dependencies(&core) {
        assert!(
            !(d == "anyhow" || d.starts_with("slurptuna")),
            "slurptuna-core must not depend on {d}"
        );
    }
    for d in ["tokio", "futures", "tracing"] {
        let line = core.lines().find(|l| l.starts_with(&format!("{d} ")));
        assert!(
            line.is_none_or(|l| l.contains("optional = true")),
            "slurptuna-core: {d} must stay optional (only the batch and testing features use it)"
        );
    }
}

#[test]
fn no_stubs_in_library_code() {
    for c in crates() {
        let src = project_root().join(&c).join("src");
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

/// "Adding a scheduler" in ARCHITECTURE.md: every scheduler crate (`slurptuna-exec-*` but the
/// local one) is an optional dependency of the facade, named like its feature, and registered in
/// the facade's one registration point.
#[test]
fn every_scheduler_crate_is_a_feature_and_registered() {
    let facade = read(&project_root().join("slurptuna/Cargo.toml"));
    let registry = read(&project_root().join("slurptuna/src/backends.rs"));
    for c in backends() {
        if !c.starts_with("slurptuna-exec-") || c == "slurptuna-exec-local" {
            continue;
        }
        let line = facade
            .lines()
            .find(|l| l.contains(&format!("package = \"{c}\"")))
            .unwrap_or_else(|| panic!("slurptuna/Cargo.toml: no optional dependency on {c}"));
        assert!(
            line.contains("optional = true"),
            "{c} must be optional: {line}"
        );
        let feature = line.split(['=', ' ']).next().unwrap_or_default();
        assert!(
            registry.contains(&format!("\"{feature}\" => {feature}::")),
            "slurptuna/src/backends.rs: register {c} with a line `\"{feature}\" => {feature}::<Options>,`"
        );
    }
}

/// A library user who turns the default features off gets no CLI dependencies.
#[test]
fn the_library_without_default_features_has_no_cli_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "slurptuna",
            "--no-default-features",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--offline"])
        .current_dir(project_root())
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tree.contains("slurptuna-core"),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for forbidden in [
        "clap ",
        "anyhow ",
        "tracing-subscriber ",
        "slurptuna-exec-slurm ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(forbidden)),
            "`cargo tree -p slurptuna --no-default-features -e normal` has {forbidden}:\n{tree}"
        );
    }
}
