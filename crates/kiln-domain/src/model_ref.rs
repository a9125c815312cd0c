//! Model references as users write them: `models:/name@alias`, `models:/name/Production`, `models:/name/latest`,
//! `models:/name/3`, `runs:/<run_id>/path`, or a bundle folder on disk.

use std::fmt;

use crate::{DomainError, RunId, Stage};

/// Which version of a registered model a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    Alias(String),
    Stage(Stage),
    Latest,
    Number(u64),
}

/// A parsed model reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Registered { name: String, selector: VersionSelector },
    Run { run_id: RunId, path: String },
    Folder(String),
}

impl ModelRef {
    /// Parses a reference. Anything without a `models:/` or `runs:/` scheme is a folder path.
    ///
    /// # Errors
    /// [`DomainError::ModelRef`] naming what is wrong.
    pub fn parse(reference: &str) -> Result<ModelRef, DomainError> {
        let err = |reason: &str| DomainError::ModelRef { reference: reference.to_string(), reason: reason.to_string() };
        if let Some(rest) = reference.strip_prefix("models:/") {
            if let Some((name, alias)) = rest.split_once('@') {
                if name.is_empty() || alias.is_empty() || alias.contains('/') {
                    return Err(err("expected models:/<name>@<alias>"));
                }
                return Ok(ModelRef::Registered {
                    name: name.to_string(),
                    selector: VersionSelector::Alias(alias.to_string()),
                });
            }
            let (name, what) = rest.split_once('/').ok_or_else(|| {
                err("expected models:/<name>@<alias>, models:/<name>/<stage>, models:/<name>/latest or models:/<name>/<version>")
            })?;
            if name.is_empty() || what.is_empty() {
                return Err(err("the model name and the version part must not be empty"));
            }
            let selector = if what.eq_ignore_ascii_case("latest") {
                VersionSelector::Latest
            } else if let Ok(n) = what.parse::<u64>() {
                VersionSelector::Number(n)
            } else if let Some(stage) = Stage::parse(what) {
                VersionSelector::Stage(stage)
            } else {
                return Err(err(
                    "the part after the name must be a stage (None, Staging, Production, Archived), latest or a version number",
                ));
            };
            return Ok(ModelRef::Registered { name: name.to_string(), selector });
        }
        if let Some(rest) = reference.strip_prefix("runs:/") {
            let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
            if run.is_empty() || !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(err("expected runs:/<run_id>/<path>"));
            }
            if path.split('/').any(|seg| seg == "..") {
                return Err(err("the artifact path must not contain '..'"));
            }
            return Ok(ModelRef::Run { run_id: RunId(run.to_string()), path: path.trim_matches('/').to_string() });
        }
        if reference.contains(":/") && !reference.starts_with("file:/") {
            return Err(err("unknown scheme; use models:/, runs:/ or a folder path"));
        }
        let path = reference.strip_prefix("file://").unwrap_or(reference);
        if path.is_empty() {
            return Err(err("empty reference"));
        }
        Ok(ModelRef::Folder(path.to_string()))
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Registered { name, selector } => match selector {
                VersionSelector::Alias(a) => write!(f, "models:/{name}@{a}"),
                VersionSelector::Stage(s) => write!(f, "models:/{name}/{}", s.as_str()),
                VersionSelector::Latest => write!(f, "models:/{name}/latest"),
                VersionSelector::Number(n) => write!(f, "models:/{name}/{n}"),
            },
            ModelRef::Run { run_id, path } => write!(f, "runs:/{}/{path}", run_id.0),
            ModelRef::Folder(p) => f.write_str(p),
        }
    }
}
