//! Hot reload in process: a [`Watcher`] over a registry stand-in swaps a new version in while requests run, and a
//! version that cannot be loaded leaves the old one serving. (The end-to-end test with `kiln serve`, a real store and
//! `kiln registry promote` is `tests/test_serve.py`.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_serve::{Check, LoadedModel, ModelIdentity, ModelSource, ServeConfig, Watcher};
use serde_json::json;

use crate::helpers::{churn, get, post, read, row, state_for};

/// A registry stand-in: the alias points at `current`; versions in `broken` fail to load.
struct Registry {
    current: Mutex<Option<u64>>,
    broken: Vec<u64>,
    unreachable: AtomicBool,
}

impl ModelSource for Registry {
    fn current_version(&self) -> Result<Option<u64>, String> {
        if self.unreachable.load(Ordering::Relaxed) {
            return Err("connection refused".into());
        }
        Ok(*self.current.lock().unwrap())
    }

    fn load_version(&self, version: u64) -> Result<LoadedModel, String> {
        assert!(version != 5, "a loader bug on version 5");
        if self.broken.contains(&version) {
            return Err(format!("version {version}: model.txt: sha256 does not match the bundle's metadata"));
        }
        let identity = ModelIdentity {
            reference: "models:/churn@production".into(),
            name: Some("churn".into()),
            version: Some(version),
            alias: Some("production".into()),
            run_id: Some(churn().run_id.clone()),
        };
        LoadedModel::new(read(churn()), identity).map_err(|e| e.to_string())
    }
}

fn record(i: usize) -> serde_json::Value {
    let frame = &churn().frame;
    let columns: Vec<String> = frame.names().iter().filter(|c| *c != "Churn").cloned().collect();
    row(frame, &columns, i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moved_alias_swaps_the_model_with_no_failed_request_and_a_broken_version_is_skipped() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    let registry = Registry { current: Mutex::new(Some(1)), broken: vec![3], unreachable: AtomicBool::new(false) };
    let mut watcher = Watcher::new();
    assert_eq!(watcher.check(&state, &registry), Check::Unchanged);

    // requests run while the alias moves to 2, then to the broken 3
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for k in 0..4 {
        let (state, stop) = (state.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = post(&state, "/predict", &record(k)).await;
                assert_eq!(answer.status, 200, "{}", answer.body);
                versions.push(answer.body["model"]["version"].as_u64().unwrap());
                // a small record is answered without a pending point (no socket here): let the test's task run
                tokio::task::yield_now().await;
            }
            versions
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    *registry.current.lock().unwrap() = Some(2);
    let swap = tokio::task::block_in_place(|| watcher.check(&state, &registry));
    assert_eq!(swap, Check::Swapped { from: Some(1), to: 2 });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    *registry.current.lock().unwrap() = Some(3);
    let failed = tokio::task::block_in_place(|| watcher.check(&state, &registry));
    assert!(matches!(&failed, Check::Failed { version: 3, error } if error.contains("sha256")), "{failed:?}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let versions = l.await.unwrap();
        assert!(versions.contains(&1) && versions.contains(&2), "{versions:?}");
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a request went back to an older version");
        assert!(!versions.contains(&3));
    }

    // the old version still answers, and the broken one is not tried again until the alias moves
    assert_eq!(get(&state, "/ready").await.body["model"]["version"], 2);
    assert_eq!(watcher.check(&state, &registry), Check::KnownBad(3));
    registry.unreachable.store(true, Ordering::Relaxed);
    assert!(matches!(watcher.check(&state, &registry), Check::Unreachable(_)));
    registry.unreachable.store(false, Ordering::Relaxed);
    *registry.current.lock().unwrap() = Some(4);
    assert_eq!(watcher.check(&state, &registry), Check::Swapped { from: Some(2), to: 4 });
    let answer = post(&state, "/predict", &json!(record(0))).await;
    assert_eq!(answer.headers[kiln_serve::VERSION_HEADER], "4");

    // a loader that panics is a failed load: counted, remembered, and version 4 goes on answering
    *registry.current.lock().unwrap() = Some(5);
    let panicked = watcher.check(&state, &registry);
    assert!(matches!(&panicked, Check::Failed { version: 5, error } if error.contains("a loader bug")), "{panicked:?}");
    assert_eq!(watcher.check(&state, &registry), Check::KnownBad(5));
    assert_eq!(get(&state, "/ready").await.body["model"]["version"], 4);
    let (_, _, metrics) = crate::helpers::text(&state, "/metrics").await;
    assert!(metrics.contains("kiln_model_reloads_total{outcome=\"failed\"} 2"), "{metrics}");
    assert!(metrics.contains("kiln_model_reloads_total{outcome=\"ok\"} 2"), "{metrics}");
}

/// A registry stand-in for one variant: its alias points at `version`, which loads `trained`.
struct VariantSource {
    version: u64,
    trained: &'static crate::helpers::Trained,
}

impl ModelSource for VariantSource {
    fn current_version(&self) -> Result<Option<u64>, String> {
        Ok(Some(self.version))
    }

    fn load_version(&self, version: u64) -> Result<LoadedModel, String> {
        let identity = ModelIdentity {
            reference: "models:/churn@challenger".into(),
            name: Some("churn".into()),
            version: Some(version),
            alias: Some("challenger".into()),
            run_id: Some(self.trained.run_id.clone()),
        };
        LoadedModel::new(read(self.trained), identity).map_err(|e| e.to_string())
    }
}

fn churn_version(version: u64, alias: &str) -> LoadedModel {
    let identity = ModelIdentity {
        reference: format!("models:/churn@{alias}"),
        name: Some("churn".into()),
        version: Some(version),
        alias: Some(alias.into()),
        run_id: Some(churn().run_id.clone()),
    };
    LoadedModel::new(read(churn()), identity).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_variant_reloads_on_its_own_and_a_reload_to_another_input_is_refused() {
    use kiln_serve::{AppState, Role, StickyKey, VariantModel};
    let variants = vec![
        VariantModel {
            name: "champion".into(),
            role: Role::Canary { basis_points: 5000 },
            model: churn_version(1, "production"),
        },
        VariantModel {
            name: "challenger".into(),
            role: Role::Canary { basis_points: 5000 },
            model: churn_version(2, "challenger"),
        },
    ];
    let sticky = StickyKey::parse("field:customerID").unwrap();
    let state = AppState::with_variants(ServeConfig::default(), variants, Some(sticky), None).unwrap();
    let version_of = |i: usize| state.variant_model(i).unwrap().identity().version;

    // the challenger's alias moves to 3: only the challenger swaps
    let mut watcher = Watcher::new();
    let moved = VariantSource { version: 3, trained: churn() };
    assert_eq!(watcher.check_variant(&state, 1, &moved), Check::Swapped { from: Some(2), to: 3 });
    assert_eq!((version_of(0), version_of(1)), (Some(1), Some(3)));

    // then to a version that takes forecast windows: refused, version 3 keeps answering
    let other = VariantSource { version: 4, trained: crate::helpers::eurusd() };
    match watcher.check_variant(&state, 1, &other) {
        Check::Failed { version: 4, error } => {
            assert!(error.contains("variant 'challenger' takes another input than variant 'champion'"), "{error}");
            assert!(error.contains("the first takes tabular records, the second forecast windows"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((version_of(0), version_of(1)), (Some(1), Some(3)));

    // answers name their variant and its version; the split is by the record's customerID
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let answer = post(&state, "/predict", &record(i)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let variant = answer.body["variant"].as_str().unwrap().to_string();
        let id = answer.body["id"].as_str().unwrap();
        let slot = kiln_serve::slot_of_key(id.as_bytes());
        assert_eq!(variant, if slot < 5000 { "champion" } else { "challenger" });
        let version = answer.body["model"]["version"].as_u64().unwrap();
        assert_eq!(version, if variant == "champion" { 1 } else { 3 });
        assert_eq!(answer.headers["x-kiln-variant"], variant.as_str());
        assert_eq!(answer.headers["x-kiln-model-version"], version.to_string().as_str());
        seen.insert(variant);
    }
    assert_eq!(seen.len(), 2);
    let info = get(&state, "/model").await.body;
    let listed: Vec<(&str, u64)> = info["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["model"]["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(listed, [("champion", 1), ("challenger", 3)]);
    let metrics = crate::helpers::text(&state, "/metrics").await.2;
    let info = "kiln_variant_info{variant=\"challenger\",role=\"canary\",weight=\"50\",model=\"churn\",version=\"3\"";
    assert!(metrics.contains(info), "{metrics}");
    assert!(metrics.contains("kiln_variant_requests_total{variant=\"champion\",role=\"canary\"}"), "{metrics}");
}
