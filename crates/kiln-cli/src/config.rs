//! Loading experiment YAML: `extends` chains (deep merge, later files win, lists are replaced), `${VAR}` and
//! `${VAR:-default}` interpolation in string values, then typed deserialization with unknown keys refused. Every
//! error names the file and the key path (`model.params.learning_rate`).
//!
//! Only the CLI reads files and environment variables; library crates receive the typed structs.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

/// A config error, always naming the file (and the key path when there is one).
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub(crate) file: PathBuf,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) if !key.is_empty() => write!(f, "{}: key '{}': {}", self.file.display(), key, self.message),
            _ => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl kiln_domain::HasCode for ConfigError {
    fn code(&self) -> kiln_domain::Code {
        kiln_domain::Code::ConfigInvalid
    }
}

fn err(file: &Path, key: Option<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { file: file.to_path_buf(), key, message: message.into() }
}

/// One file of the chain, after interpolation, before merging.
struct Layer {
    file: PathBuf,
    value: Value,
}

/// A merged config and the files it came from (base first).
pub(crate) struct Loaded {
    pub(crate) value: Value,
    layers: Vec<Layer>,
}

impl Loaded {
    /// The files of the chain, base first, the experiment file last.
    #[cfg(test)]
    pub(crate) fn files(&self) -> Vec<&Path> {
        self.layers.iter().map(|l| l.file.as_path()).collect()
    }

    /// Deserializes the merged value into `T`, refusing unknown keys and wrong types; the error names the file that
    /// set the offending key (the last one in the chain that has it) and the key path.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the key path.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        // through JSON's data model: serde_yaml's `Value` reads externally tagged enums only from YAML tags
        // (`!lag {...}`), while users write them as one-key maps (`- lag: {...}`)
        let json = serde_json::to_value(&self.value)
            .map_err(|e| err(self.layers.last().map_or(Path::new(""), |l| &l.file), None, e.to_string()))?;
        serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let inner = e.into_inner().to_string();
            let path = name_unknown_key(path, &inner);
            let file = self.file_defining(&path);
            err(file, Some(path), inner)
        })
    }

    /// An error about the key at `path` (e.g. `task.horizon`), naming the file that set it.
    pub(crate) fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        err(self.file_defining(path), Some(path.to_string()), message)
    }

    /// Deserializes one part of the merged config (already in JSON's data model) found at `path`, with errors
    /// naming the file and the full key path.
    pub(crate) fn parse_at<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &serde_json::Value,
    ) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_string()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                format!("{path}.{inner}")
            };
            let message = e.into_inner().to_string();
            let full = name_unknown_key(full, &message);
            err(self.file_defining(&full), Some(full), message)
        })
    }

    /// The last file of the chain that defines `path` (or a prefix of it); the experiment file when none does.
    fn file_defining(&self, path: &str) -> &Path {
        let path = path.replace('[', ".[");
        let segments: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('.').collect() };
        for depth in (0..=segments.len()).rev() {
            for layer in self.layers.iter().rev() {
                if lookup(&layer.value, &segments[..depth]).is_some() && depth > 0 {
                    return &layer.file;
                }
            }
        }
        &self.layers.last().expect("a config chain has at least one file").file
    }
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for seg in path {
        current = match current {
            Value::Mapping(m) => m.get(Value::String((*seg).to_string()))?,
            Value::Sequence(s) => {
                let idx = seg.trim_start_matches('[').trim_end_matches(']').parse::<usize>().ok()?;
                s.get(idx)?
            }
            _ => return None,
        };
    }
    Some(current)
}

/// Loads `path` and everything it `extends`, interpolating with `env`.
///
/// # Errors
/// [`ConfigError`] for an unreadable file, bad YAML (with its line), an `extends` cycle, or a variable that is not
/// set and has no default.
pub(crate) fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    let mut layers = Vec::new();
    let mut seen = BTreeSet::new();
    collect(path, env, &mut layers, &mut seen)?;
    let mut merged = Value::Mapping(Mapping::new());
    for layer in &layers {
        merge(&mut merged, layer.value.clone());
    }
    let loaded = Loaded { value: merged, layers };
    // YAML's .nan and .inf would reach serde as null (JSON has neither): refused here, where the key is known
    if let Some((key, number)) = non_finite(&loaded.value, &mut Vec::new()) {
        return Err(
            loaded.error_at(&key, format!("{number} is not a number kiln accepts (NaN and infinity are refused)"))
        );
    }
    Ok(loaded)
}

/// The key path and text of the first NaN or infinite number in `value`.
fn non_finite(value: &Value, path: &mut Vec<String>) -> Option<(String, String)> {
    match value {
        Value::Number(n) if n.as_f64().is_some_and(|x| !x.is_finite()) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let text = if x.is_nan() {
                ".nan"
            } else if x > 0.0 {
                ".inf"
            } else {
                "-.inf"
            };
            Some((path.join(".").replace(".[", "["), text.to_string()))
        }
        Value::Mapping(m) => m.iter().find_map(|(k, v)| {
            path.push(key_text(k));
            let found = non_finite(v, path);
            path.pop();
            found
        }),
        Value::Sequence(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(format!("[{i}]"));
            let found = non_finite(v, path);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// serde names a map key it could not read `?`; the key is in the message (`unknown variant `foo``).
fn name_unknown_key(path: String, message: &str) -> String {
    let Some(stem) = path.strip_suffix('?') else {
        return path;
    };
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown variant") || message.starts_with("unknown field"));
    match key {
        Some(key) => format!("{stem}{key}"),
        None => path,
    }
}

fn collect(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    layers: &mut Vec<Layer>,
    seen: &mut BTreeSet<PathBuf>,
) -> Result<(), ConfigError> {
    let canonical = path.canonicalize().map_err(|e| err(path, None, format!("cannot read the config file: {e}")))?;
    if !seen.insert(canonical.clone()) {
        return Err(err(path, Some("extends".into()), "the extends chain loops back to this file"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(path, None, format!("cannot read: {e}")))?;
    let mut value: Value = serde_yaml::from_str(&text).map_err(|e| err(path, None, format!("invalid YAML: {e}")))?;
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = &mut value else {
        return Err(err(path, None, "the top level must be a mapping of keys"));
    };
    let extends = map.remove(Value::String("extends".into()));
    let parents: Vec<String> = match extends {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Sequence(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(err(path, Some(format!("extends[{i}]")), "expected a file path")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err(path, Some("extends".into()), "expected a file path or a list of file paths")),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    for parent in parents {
        let parent_path = dir.join(&parent);
        if !parent_path.exists() {
            return Err(err(path, Some("extends".into()), format!("file '{}' does not exist", parent_path.display())));
        }
        collect(&parent_path, env, layers, seen)?;
    }
    interpolate(&mut value, env, path, &mut Vec::new())?;
    layers.push(Layer { file: path.to_path_buf(), value });
    seen.remove(&canonical);
    Ok(())
}

/// Deep merge: mappings merge key by key, anything else (lists included) is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, over) => *slot = over,
    }
}

fn interpolate(
    value: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Path,
    path: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains("${") => {
            let whole = s.trim().starts_with("${") && s.trim().ends_with('}') && s.matches("${").count() == 1;
            let out = substitute(s, env).map_err(|m| err(file, Some(path.join(".")), m))?;
            // a value that is exactly one ${...} takes the type its text has (a number stays a number)
            *value = if whole {
                match serde_yaml::from_str::<Value>(&out) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
                    _ => Value::String(out),
                }
            } else {
                Value::String(out)
            };
        }
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                path.push(key_text(k));
                interpolate(v, env, file, path)?;
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                interpolate(v, env, file, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// Replaces every `${VAR}` / `${VAR:-default}`; `$${` is a literal `${`.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed '${{' in '{text}'"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'${{{expr}}}' is not a valid variable reference"));
        }
        match (env(name), default) {
            (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set and has no default")),
            (Some(v), None) => out.push_str(&v),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a variable or key name names a secret: it holds password, token, secret, api_key, apikey, credential or
/// private_key, in any case.
fn names_a_secret(name: &str) -> bool {
    const MARKS: [&str; 7] = ["password", "token", "secret", "api_key", "apikey", "credential", "private_key"];
    let lower = name.to_ascii_lowercase();
    MARKS.iter().any(|m| lower.contains(m))
}

/// Environment variables whose values are secrets: names holding PASSWORD, TOKEN, SECRET, API_KEY, APIKEY,
/// CREDENTIAL or PRIVATE_KEY (MLflow's MLFLOW_TRACKING_PASSWORD and _TOKEN, kiln's KILN_API_KEYS, AWS and GCP keys).
/// Values shorter than 4 characters are left out (they would redact ordinary text).
pub(crate) fn secret_env_values(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut out: Vec<String> = vars
        .filter(|(name, value)| names_a_secret(name) && value.chars().count() >= 4)
        .flat_map(|(name, value)| {
            // a list of keys (KILN_API_KEYS) is redacted key by key too
            let parts: Vec<String> = if name.to_ascii_uppercase().ends_with("KEYS") {
                value.split(',').map(str::trim).filter(|k| k.chars().count() >= 4).map(str::to_string).collect()
            } else {
                Vec::new()
            };
            std::iter::once(value).chain(parts)
        })
        .collect();
    // longest first, so that a key inside a longer secret does not leave the rest of it
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out
}

/// `text` with URL user-info and the values of `secrets` replaced by `***`.
pub(crate) fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut text = kiln::redact_user_info(text);
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// Redacts credentials in a config about to be printed or stored: the user-info of every URL (`***@host`), the values
/// of `secrets` wherever they appear (values of secret environment variables interpolated with `${...}`), and the
/// values of keys that name a secret (`password`, `token`, `secret`, `api_key`).
pub(crate) fn redact(value: &mut serde_json::Value, secrets: &[String]) {
    match value {
        serde_json::Value::String(s) => *s = redact_text(s, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if names_a_secret(key) && !v.is_null() {
                    *v = serde_json::Value::String("***".into());
                } else {
                    redact(v, secrets);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
