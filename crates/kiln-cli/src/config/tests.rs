use std::collections::HashMap;
use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Small {
    name: String,
    model: SmallModel,
    tags: Vec<String>,
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SmallModel {
    rate: f64,
    leaves: u32,
}

#[test]
fn extends_merges_and_overrides() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base/a.yaml", "name: base\nmodel: {rate: 0.1, leaves: 31}\ntags: [x, y]\n");
    let exp = write(d.path(), "exp/e.yaml", "extends: ../base/a.yaml\nmodel: {leaves: 7}\ntags: [z]\n");
    let loaded = load(&exp, &env_of(&[])).unwrap();
    let s: Small = loaded.parse().unwrap();
    assert_eq!(s, Small { name: "base".into(), model: SmallModel { rate: 0.1, leaves: 7 }, tags: vec!["z".into()] });
    assert_eq!(loaded.files().len(), 2);
}

#[test]
fn interpolation_with_defaults_keeps_types() {
    let d = tempfile::tempdir().unwrap();
    let exp = write(
        d.path(),
        "e.yaml",
        "name: run-${WHO}\nmodel: {rate: '${RATE:-0.5}', leaves: '${LEAVES}'}\ntags: ['$${literal}', '${EMPTY:-dflt}']\n",
    );
    let s: Small = load(&exp, &env_of(&[("WHO", "ana"), ("LEAVES", "15"), ("EMPTY", "")])).unwrap().parse().unwrap();
    assert_eq!(s.name, "run-ana");
    assert_eq!(s.model, SmallModel { rate: 0.5, leaves: 15 });
    assert_eq!(s.tags, vec!["${literal}".to_string(), "dflt".to_string()]);
}

#[test]
fn unset_variable_names_file_and_key() {
    let d = tempfile::tempdir().unwrap();
    let exp = write(d.path(), "e.yaml", "name: x\nmodel: {rate: '${NOPE}', leaves: 1}\ntags: []\n");
    let e = load(&exp, &env_of(&[])).err().unwrap().to_string();
    assert!(e.contains("e.yaml") && e.contains("model.rate") && e.contains("NOPE"), "{e}");
}

#[test]
fn unknown_key_names_the_file_that_set_it() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base.yaml", "name: base\nmodel: {rate: 0.1, leaves: 31}\ntags: []\n");
    let exp = write(d.path(), "e.yaml", "extends: base.yaml\nmodel: {leaves: 7, learning_rat: 3}\n");
    let e = load(&exp, &env_of(&[])).unwrap().parse::<Small>().unwrap_err().to_string();
    assert!(e.contains("e.yaml") && e.contains("model") && e.contains("learning_rat"), "{e}");
    assert!(!e.contains("base.yaml"), "{e}");
}

#[test]
fn wrong_type_names_the_base_file_when_the_base_set_it() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base.yaml", "name: base\nmodel: {rate: fast, leaves: 31}\ntags: []\n");
    let exp = write(d.path(), "e.yaml", "extends: base.yaml\nname: e\n");
    let e = load(&exp, &env_of(&[])).unwrap().parse::<Small>().unwrap_err().to_string();
    assert!(e.contains("base.yaml") && e.contains("model.rate"), "{e}");
}

#[test]
fn extends_cycle_and_missing_file_are_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.yaml", "extends: b.yaml\n");
    let b = write(d.path(), "b.yaml", "extends: a.yaml\n");
    assert!(load(&b, &env_of(&[])).err().unwrap().to_string().contains("loops"));
    let c = write(d.path(), "c.yaml", "extends: missing.yaml\n");
    let e = load(&c, &env_of(&[])).err().unwrap().to_string();
    assert!(e.contains("c.yaml") && e.contains("missing.yaml"), "{e}");
    let bad = write(d.path(), "bad.yaml", "name: [unclosed\n");
    let e = load(&bad, &env_of(&[])).err().unwrap().to_string();
    assert!(e.contains("bad.yaml") && e.contains("line"), "{e}");
}
