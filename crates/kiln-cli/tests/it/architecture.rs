//! The crate dependency rules of ARCHITECTURE.md, checked on `cargo metadata`'s resolved graph (normal
//! dependencies only, transitively).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Internal edges each crate may have (direct normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("kiln-domain", &[]),
    // the selectors' folds, metrics and sums are kiln-eval's (kiln-eval depends on kiln-domain only: no cycle)
    ("kiln-features", &["kiln-domain", "kiln-eval"]),
    // XGBoost's C API, built from its source (a leaf: no internal dependency)
    ("kiln-xgboost-sys", &[]),
    ("kiln-models", &["kiln-domain", "kiln-features", "kiln-xgboost-sys"]),
    ("kiln-eval", &["kiln-domain"]),
    // whole-frame and streamed scoring of a bundle: no files, no training
    ("kiln-score", &["kiln-domain", "kiln-features", "kiln-models"]),
    ("kiln-train", &["kiln-domain", "kiln-features", "kiln-models", "kiln-eval", "kiln-registry", "kiln-score"]),
    ("kiln-registry", &["kiln-domain"]),
    // data in and out: file formats and the data-source adapters
    ("kiln-data", &["kiln-domain"]),
    // the tracking store (the bundle format of kiln-models allowed; bundles move as folders today)
    ("kiln-store", &["kiln-domain", "kiln-models"]),
    // scoring needs only the bundle's pipeline and model; the CLI resolves the reference and hands over the bundle
    ("kiln-serve", &["kiln-domain", "kiln-eval", "kiln-features", "kiln-models"]),
    // the facade a Rust service depends on: store opening, reference resolution, bundle loading and scoring; no
    // training code
    (
        "kiln",
        &["kiln-domain", "kiln-features", "kiln-models", "kiln-score", "kiln-registry", "kiln-data", "kiln-store"],
    ),
    // kiln's Python package: Python's columns in, the facade's predictions out, nothing else
    ("kiln-py", &["kiln"]),
    (
        "kiln-cli",
        &[
            "kiln-domain",
            "kiln-features",
            "kiln-models",
            "kiln-eval",
            "kiln-score",
            "kiln-train",
            "kiln-registry",
            "kiln-data",
            "kiln-store",
            "kiln-serve",
            "kiln",
            // not called: its build script's `links` metadata says which OpenMP runtime the binary links
            "kiln-xgboost-sys",
        ],
    ),
];

/// Crates that must stay pure: no async runtime, no HTTP, no dataframe library, even transitively.
const PURE: &[&str] =
    &["kiln-domain", "kiln-features", "kiln-models", "kiln-eval", "kiln-score", "kiln-train", "kiln-registry"];
const FORBIDDEN_IN_PURE: &[&str] = &["tokio", "axum", "reqwest", "ureq", "hyper", "polars", "polars-core"];

struct Graph {
    names: BTreeMap<String, String>,
    deps: BTreeMap<String, Vec<String>>,
}

fn graph() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(format!(
            "{}/../..",
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
        ))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        names.insert(p["id"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string());
    }
    let mut deps = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let normal: Vec<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        deps.insert(node["id"].as_str().unwrap().to_string(), normal);
    }
    Graph { names, deps }
}

impl Graph {
    fn id(&self, name: &str) -> String {
        self.names.iter().find(|(_, n)| *n == name).map(|(id, _)| id.clone()).unwrap_or_else(|| panic!("{name}"))
    }

    fn direct(&self, name: &str) -> BTreeSet<String> {
        self.deps[&self.id(name)].iter().map(|d| self.names[d].clone()).collect()
    }

    fn transitive(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.id(name)];
        while let Some(id) = stack.pop() {
            for d in &self.deps[&id] {
                if seen.insert(self.names[d].clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    }
}

#[test]
fn internal_edges_follow_the_table() {
    let g = graph();
    let workspace: BTreeSet<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
    for (name, allowed) in ALLOWED {
        for dep in g.direct(name) {
            if dep.starts_with("kiln-") || dep == "kiln" {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{name} depends on {dep}, which ARCHITECTURE.md does not allow"
                );
            }
        }
    }
    for (id, name) in &g.names {
        if name.starts_with("kiln-") || name == "kiln" {
            assert!(workspace.contains(name.as_str()), "crate {name} ({id}) is not in the dependency table");
        }
    }
}

#[test]
fn pure_crates_link_no_runtime_http_or_dataframe() {
    let g = graph();
    for name in PURE {
        let all = g.transitive(name);
        for bad in FORBIDDEN_IN_PURE {
            assert!(!all.contains(*bad), "{name} links {bad} (transitively)");
        }
    }
}

/// HTTP-server crates; only `kiln-serve` names them (the CLI runs it on a tokio runtime without touching them).
const HTTP_SERVER: &[&str] = &["axum", "axum-core", "hyper", "hyper-util", "tower", "tower-http", "http-body"];

#[test]
fn only_kiln_serve_knows_http_server_types() {
    let g = graph();
    for (name, _) in ALLOWED {
        if *name == "kiln-serve" {
            continue;
        }
        let direct = g.direct(name);
        for server in HTTP_SERVER {
            assert!(!direct.contains(*server), "{name} depends on {server}; only kiln-serve knows HTTP-server types");
        }
    }
}

#[test]
fn the_server_links_no_dataframe_library() {
    let all = graph().transitive("kiln-serve");
    for bad in ["polars", "polars-core", "reqwest", "ureq"] {
        assert!(!all.contains(bad), "kiln-serve links {bad} (transitively)");
    }
}

#[test]
fn the_facade_links_neither_the_server_nor_the_cli() {
    // a service that embeds a model gets no HTTP server and no CLI with it (its direct dependencies are checked
    // against HTTP_SERVER above; transitively polars, under kiln-data, brings tokio and, in cargo's
    // workspace-wide view, object_store's HTTP client)
    let all = graph().transitive("kiln");
    for bad in ["kiln-serve", "kiln-cli"] {
        assert!(!all.contains(bad), "kiln links {bad} (transitively)");
    }
}

/// File-format and outbound-HTTP client crates, and the adapter crates that alone may name them: data files belong
/// to kiln-data, the tracking store (its layout, its charts, the MLflow client) to kiln-store; the data sources to
/// come (Yahoo, BigQuery) make HTTP calls from kiln-data. Everyone else reaches files and servers through them.
const ADAPTER_ONLY: &[(&str, &[&str])] = &[
    ("csv", &["kiln-data"]),
    ("polars", &["kiln-data"]),
    ("plotters", &["kiln-store"]),
    ("ureq", &["kiln-data", "kiln-store"]),
    ("reqwest", &["kiln-data", "kiln-store"]),
];

#[test]
fn only_the_data_and_store_crates_know_file_formats_and_http_clients() {
    let g = graph();
    for (name, _) in ALLOWED {
        let direct = g.direct(name);
        for (dep, owners) in ADAPTER_ONLY {
            assert!(
                !direct.contains(*dep) || owners.contains(name),
                "{name} depends on {dep}; only {} may",
                owners.join(" and ")
            );
        }
    }
}

#[test]
fn the_store_knows_no_data_format_and_the_data_crate_no_store() {
    let g = graph();
    let store = g.transitive("kiln-store");
    for bad in ["kiln-data", "polars", "polars-core", "csv"] {
        assert!(!store.contains(bad), "kiln-store links {bad} (transitively); data files belong to kiln-data");
    }
    let data = g.transitive("kiln-data");
    for bad in ["kiln-store", "kiln-models", "plotters"] {
        assert!(!data.contains(bad), "kiln-data links {bad} (transitively); the tracking store belongs to kiln-store");
    }
}

#[test]
fn the_facade_has_no_training_code() {
    // scoring is kiln-score's; the facade's tests may still train their models (a dev-dependency). kiln-eval comes
    // in through kiln-features (the selectors' metrics and folds): evaluation vocabulary, not training code
    let all = graph().transitive("kiln");
    assert!(!all.contains("kiln-train"), "kiln links kiln-train (transitively)");
}

#[test]
fn nothing_depends_on_the_cli_and_only_the_cli_uses_anyhow() {
    let g = graph();
    for (name, _) in ALLOWED {
        let direct = g.direct(name);
        assert!(!direct.contains("kiln-cli"), "{name} depends on kiln-cli");
        if *name != "kiln-cli" {
            assert!(!direct.contains("anyhow"), "{name} uses anyhow; libraries return typed errors");
        }
    }
}
