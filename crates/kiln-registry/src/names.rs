//! Checks of what kiln writes into a registry: model names, aliases (MLflow's rules), run ids and artifact paths.
//! A port failure that means "not found" is told apart here: a missing model or a missing version/alias.

use kiln_domain::{Code, ModelRegistry, PortError};

use crate::RegistryError;

/// MLflow's limit on alias length.
const MAX_ALIAS_LEN: usize = 255;

fn invalid(what: &'static str, value: &str, reason: &str) -> RegistryError {
    RegistryError::Invalid { what, value: value.to_string(), reason: reason.to_string() }
}

/// A name that `models:/<name>@<alias>` can refer to: not empty, no `/` or `@`, no surrounding spaces.
pub(crate) fn check_model_name(name: &str) -> Result<(), RegistryError> {
    if name.is_empty() {
        return Err(invalid("model name", name, "it is empty"));
    }
    if name.contains(['/', '@']) {
        return Err(invalid(
            "model name",
            name,
            "it must not contain '/' or '@' (models:/<name>@<alias> could not name it)",
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(invalid("model name", name, "it must not start or end with spaces or contain control characters"));
    }
    Ok(())
}

/// MLflow's alias rules: letters, digits, `_` and `-`, at most 255 characters, not `latest` (any case) and not
/// `v<digits>` (any case).
pub(crate) fn check_alias(alias: &str) -> Result<(), RegistryError> {
    if alias.is_empty() {
        return Err(invalid("alias", alias, "it is empty"));
    }
    if !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid("alias", alias, "aliases may only contain letters, digits, '_' and '-'"));
    }
    if alias.chars().count() > MAX_ALIAS_LEN {
        return Err(invalid("alias", alias, "aliases are at most 255 characters"));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(invalid("alias", alias, "'latest' (in any case) is reserved"));
    }
    if let Some(digits) = alias.strip_prefix(['v', 'V'])
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
    {
        return Err(invalid("alias", alias, "v<number> is reserved for version numbers"));
    }
    Ok(())
}

/// A run id as `runs:/<run_id>/...` accepts it: letters, digits, `-` and `_`.
pub(crate) fn check_run_id(run_id: &str) -> Result<(), RegistryError> {
    if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(
            "run id",
            run_id,
            "expected letters, digits, '-' or '_' (32 hex characters for kiln's runs)",
        ));
    }
    Ok(())
}

/// An artifact path relative to the run's root: `/`-separated, no `..`, no backslash; leading and trailing `/`
/// are dropped. Empty means the artifact root.
pub(crate) fn clean_artifact_path(path: &str) -> Result<String, RegistryError> {
    let trimmed = path.trim_matches('/');
    if trimmed.split('/').any(|seg| seg == ".." || seg == ".") || trimmed.contains("//") {
        return Err(invalid(
            "artifact path",
            path,
            "it must be a plain relative path, without '.', '..' or empty parts",
        ));
    }
    if trimmed.contains('\\') {
        return Err(invalid("artifact path", path, "use '/' as the separator"));
    }
    Ok(trimmed.to_string())
}

/// Whether the registered model `name` exists, by listing its versions.
pub(crate) fn model_exists(registry: &dyn ModelRegistry, name: &str) -> Result<bool, RegistryError> {
    match registry.list_versions(name) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Code::NotFound => Ok(false),
        Err(e) => Err(RegistryError::port(format!("listing the versions of '{name}'"))(e)),
    }
}

/// Turns a port failure into a precise error: for `not_found`, [`RegistryError::NoSuchModel`] when the model is
/// missing, else `missing()` (the version or alias); any other failure keeps its code, with `context`.
pub(crate) fn explain(
    registry: &dyn ModelRegistry,
    name: &str,
    e: PortError,
    context: impl Into<String>,
    missing: impl FnOnce() -> RegistryError,
) -> RegistryError {
    if e.code != Code::NotFound {
        return RegistryError::port(context)(e);
    }
    match model_exists(registry, name) {
        Ok(true) => missing(),
        Ok(false) => RegistryError::NoSuchModel { name: name.to_string() },
        Err(other) => other,
    }
}
