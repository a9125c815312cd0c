//! The model bundle: an MLflow model directory that Python's `mlflow.lightgbm.load_model` (or
//! `mlflow.xgboost.load_model`) and `mlflow.pyfunc.load_model` open, with kiln's own files beside the native model:
//!
//! ```text
//! <dir>/MLmodel              flavors python_function + lightgbm (or xgboost), model_uuid, utc_time_created, run_id?,
//!                            kiln {...}
//! <dir>/model.lgb            the LightGBM text model, or
//! <dir>/model.json           the XGBoost JSON model (flavor xgboost: model_class xgboost.core.Booster, format json)
//! <dir>/kiln/pipeline.json   the fitted feature pipeline (generic: any serde type)
//! <dir>/kiln/metadata.json   BundleMetadata, with the sha256 of every other file
//! ```
//!
//! Key decisions: a bundle is written into a temporary sibling folder and renamed into place, so a crash never
//! leaves half a bundle; reading verifies every checksum (and that no file is missing or unlisted) before parsing
//! anything, and parses the bytes it verified. `MLmodel` has no `python_version` and no `mlflow_version`: kiln runs
//! no Python and is not MLflow, so it does not claim either (MLflow only logs a warning for the first, and the second
//! is informational); `model_uuid` is derived from the content, so writing the same bundle twice gives the same bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_domain::{Matrix, Predictor, civil_from_millis};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::curve::EvalCurve;
use crate::lightgbm::{LIGHTGBM_VERSION, LightGbmModel};
use crate::smartcore_adapter::{SMARTCORE_VERSION, SmartcoreModel};
use crate::xgboost::{XGBOOST_VERSION, XgBoostModel};
use crate::{BundleError, ModelError};

/// The version of the on-disk layout, written to `MLmodel` under `kiln.format_version`.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// kiln's version, for [`BundleMetadata::kiln_version`].
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

const MLMODEL: &str = "MLmodel";
const PIPELINE: &str = "kiln/pipeline.json";
const METADATA: &str = "kiln/metadata.json";

/// The kinds of fitted model a bundle can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[serde(rename = "lightgbm")]
    LightGbm,
    #[serde(rename = "xgboost")]
    XgBoost,
    /// a smartcore model (random forest, linear family, logistic) in kiln's own JSON format
    #[serde(rename = "smartcore")]
    Smartcore,
}

impl ModelKind {
    /// The name used in metadata and MLflow (`lightgbm`, `xgboost`), also the MLflow flavor's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::LightGbm => "lightgbm",
            ModelKind::XgBoost => "xgboost",
            ModelKind::Smartcore => "smartcore",
        }
    }

    /// The native model's file name inside the bundle.
    pub fn model_file(self) -> &'static str {
        match self {
            ModelKind::LightGbm => "model.lgb",
            ModelKind::XgBoost => "model.json",
            ModelKind::Smartcore => "model.smartcore.json",
        }
    }
}

/// A fitted model of any supported kind (a closed set).
#[derive(Debug)]
pub enum FittedModel {
    LightGbm(LightGbmModel),
    XgBoost(XgBoostModel),
    Smartcore(SmartcoreModel),
}

impl FittedModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            FittedModel::LightGbm(_) => ModelKind::LightGbm,
            FittedModel::XgBoost(_) => ModelKind::XgBoost,
            FittedModel::Smartcore(_) => ModelKind::Smartcore,
        }
    }

    /// One prediction per row.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match self {
            FittedModel::LightGbm(m) => m.predict(x),
            FittedModel::XgBoost(m) => m.predict(x),
            FittedModel::Smartcore(m) => m.predict(x),
        }
    }

    /// One row's prediction through the model's fastest path; equal to [`FittedModel::predict`].
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is wrong.
    pub fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        match self {
            FittedModel::LightGbm(m) => m.predict_row(row),
            FittedModel::XgBoost(m) => m.predict_row(row),
            FittedModel::Smartcore(m) => m.predict_row(row),
        }
    }

    /// The feature names the model was fitted on, in order.
    pub fn feature_names(&self) -> &[String] {
        match self {
            FittedModel::LightGbm(m) => m.feature_names(),
            FittedModel::XgBoost(m) => m.feature_names(),
            FittedModel::Smartcore(m) => m.feature_names(),
        }
    }

    /// The boosting library's metric after every round of the fit, on the training and validation rows; empty for
    /// smartcore models and for a model read from a bundle.
    pub fn eval_curves(&self) -> &[EvalCurve] {
        match self {
            FittedModel::LightGbm(m) => m.eval_curves(),
            FittedModel::XgBoost(m) => m.eval_curves(),
            FittedModel::Smartcore(_) => &[],
        }
    }

    /// `(name, gain, split count)` per feature.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the library fails.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError> {
        match self {
            FittedModel::LightGbm(m) => m.feature_importance(),
            FittedModel::XgBoost(m) => m.feature_importance(),
            // smartcore gives one importance per feature (|coef| or the forest's); no split counts
            FittedModel::Smartcore(m) => {
                Ok(m.feature_importance()?.into_iter().map(|(name, v)| (name, v, f64::NAN)).collect())
            }
        }
    }

    /// The untransformed score per row (log-odds for a binary classifier); rows of
    /// [`FittedModel::contributions`] sum to it. `None` for a model without one.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn predict_raw(&self, x: &Matrix) -> Result<Option<Vec<f64>>, ModelError> {
        match self {
            FittedModel::LightGbm(m) => m.predict_raw(x).map(Some),
            FittedModel::XgBoost(m) => m.predict_raw(x).map(Some),
            FittedModel::Smartcore(_) => Ok(None),
        }
    }

    /// SHAP contributions from the library's own tree algorithm: one column per feature plus a last `bias` column,
    /// each row summing to [`FittedModel::predict_raw`]. `None` for a model without native contributions.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn contributions(&self, x: &Matrix) -> Result<Option<Matrix>, ModelError> {
        match self {
            FittedModel::LightGbm(m) => m.contributions(x).map(Some),
            FittedModel::XgBoost(m) => m.contributions(x).map(Some),
            FittedModel::Smartcore(_) => Ok(None),
        }
    }

    /// The native model file's bytes.
    ///
    /// # Errors
    /// The library's error when it cannot serialize the model.
    pub fn to_native_bytes(&self) -> Result<Vec<u8>, ModelError> {
        match self {
            FittedModel::LightGbm(m) => Ok(m.to_model_string()?.into_bytes()),
            FittedModel::XgBoost(m) => m.to_json_bytes(),
            FittedModel::Smartcore(m) => m.to_bytes(),
        }
    }

    /// A model of `kind` from its native file's bytes.
    ///
    /// # Errors
    /// [`ModelError::Load`] when the bytes are not such a model.
    pub fn from_native_bytes(kind: ModelKind, bytes: &[u8]) -> Result<FittedModel, ModelError> {
        match kind {
            ModelKind::LightGbm => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| ModelError::Load(format!("the LightGBM model is not UTF-8: {e}")))?;
                Ok(FittedModel::LightGbm(LightGbmModel::from_model_string(text)?))
            }
            ModelKind::XgBoost => Ok(FittedModel::XgBoost(XgBoostModel::from_json_bytes(bytes)?)),
            ModelKind::Smartcore => Ok(FittedModel::Smartcore(SmartcoreModel::from_bytes(bytes)?)),
        }
    }
}

impl Predictor for FittedModel {
    type Error = ModelError;

    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        FittedModel::predict(self, x)
    }

    fn feature_names(&self) -> &[String] {
        FittedModel::feature_names(self)
    }
}

/// What kiln records about a bundle (`kiln/metadata.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMetadata {
    pub kiln_version: String,
    pub model_kind: ModelKind,
    /// when the model was trained, UTC ms
    pub created_ms: i64,
    pub run_id: Option<String>,
    /// held-out metrics; NaN is written as `null` and read back as NaN
    #[serde(with = "nan_as_null")]
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    /// sha256 of the training data snapshot
    pub data_sha256: String,
    /// the model's input columns, in order (the pipeline's output)
    pub feature_names: Vec<String>,
    pub target: String,
    /// forecast horizon in rows, for time-series models
    pub horizon: Option<u32>,
    /// relative path -> sha256 hex of every other file in the bundle; [`write_bundle`] fills it
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

mod nan_as_null {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Option<f64>> = m.iter().map(|(k, v)| (k, v.is_finite().then_some(*v))).collect();
        m.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(m.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
    }
}

/// A fitted pipeline, its model, and what kiln knows about them.
#[derive(Debug)]
pub struct Bundle<P> {
    pub pipeline: P,
    pub model: FittedModel,
    pub metadata: BundleMetadata,
}

// ---- MLmodel ----

#[derive(Debug, Serialize, Deserialize)]
struct MlModel {
    flavors: Flavors,
    model_uuid: String,
    utc_time_created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    kiln: KilnSection,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flavors {
    /// absent for smartcore models: MLflow has no loader for them
    #[serde(default, skip_serializing_if = "Option::is_none")]
    python_function: Option<PyFuncFlavor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lightgbm: Option<LightGbmFlavor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xgboost: Option<XgBoostFlavor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kiln_smartcore: Option<SmartcoreFlavor>,
}

/// kiln's own flavor for smartcore models (only kiln loads them).
#[derive(Debug, Serialize, Deserialize)]
struct SmartcoreFlavor {
    data: String,
    smartcore_version: String,
    model: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PyFuncFlavor {
    loader_module: String,
    data: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct LightGbmFlavor {
    data: String,
    lgb_version: String,
    model_class: String,
}

/// What `mlflow.xgboost.save_model` writes (MLflow 3.17.2), less `code` (kiln ships none).
#[derive(Debug, Serialize, Deserialize)]
struct XgBoostFlavor {
    data: String,
    model_class: String,
    model_format: String,
    xgb_version: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KilnSection {
    format_version: u32,
    kiln_version: String,
    pipeline: String,
    metadata: String,
}

fn utc_time(ms: i64) -> String {
    let c = civil_from_millis(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000) * 1000
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mlmodel_for(
    kind: ModelKind,
    model_name: &str,
    meta: &BundleMetadata,
    model_bytes: &[u8],
    pipeline_bytes: &[u8],
) -> MlModel {
    let mut h = Sha256::new();
    h.update(model_bytes);
    h.update(pipeline_bytes);
    h.update(meta.created_ms.to_le_bytes());
    let model_uuid = hex::encode(&h.finalize()[..16]);
    let flavors = match kind {
        ModelKind::LightGbm => Flavors {
            python_function: Some(PyFuncFlavor {
                loader_module: "mlflow.lightgbm".into(),
                data: kind.model_file().into(),
            }),
            kiln_smartcore: None,
            lightgbm: Some(LightGbmFlavor {
                data: kind.model_file().into(),
                lgb_version: LIGHTGBM_VERSION.into(),
                model_class: "lightgbm.basic.Booster".into(),
            }),
            xgboost: None,
        },
        ModelKind::XgBoost => Flavors {
            python_function: Some(PyFuncFlavor {
                loader_module: "mlflow.xgboost".into(),
                data: kind.model_file().into(),
            }),
            kiln_smartcore: None,
            lightgbm: None,
            xgboost: Some(XgBoostFlavor {
                data: kind.model_file().into(),
                model_class: "xgboost.core.Booster".into(),
                model_format: "json".into(),
                xgb_version: XGBOOST_VERSION.into(),
            }),
        },
        ModelKind::Smartcore => Flavors {
            python_function: None,
            lightgbm: None,
            xgboost: None,
            kiln_smartcore: Some(SmartcoreFlavor {
                data: kind.model_file().into(),
                smartcore_version: SMARTCORE_VERSION.into(),
                model: model_name.to_string(),
            }),
        },
    };
    MlModel {
        flavors,
        model_uuid,
        utc_time_created: utc_time(meta.created_ms),
        run_id: meta.run_id.clone(),
        kiln: KilnSection {
            format_version: BUNDLE_FORMAT_VERSION,
            kiln_version: meta.kiln_version.clone(),
            pipeline: PIPELINE.into(),
            metadata: METADATA.into(),
        },
    }
}

// ---- writing ----

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |source| BundleError::Io { path, action, source }
}

fn write_file(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), BundleError> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent, "creating the folder"))?;
    }
    let mut f = fs::File::create(&path).map_err(io_err(&path, "creating the file"))?;
    f.write_all(bytes).map_err(io_err(&path, "writing"))?;
    f.sync_all().map_err(io_err(&path, "syncing"))
}

/// Writes `bundle` as the folder `dir`: into a temporary sibling first, renamed into place once complete.
/// `metadata.files` is computed here (what the caller put there is replaced); the metadata as written is returned.
///
/// # Errors
/// [`BundleError::Exists`] when `dir` exists and is not empty; [`BundleError::Format`] when the metadata's
/// model kind or feature names disagree with the model; [`BundleError::Model`] when the model cannot be serialized
/// or the pipeline cannot be written as JSON; [`BundleError::Io`] when the file system fails.
pub fn write_bundle<P: Serialize>(dir: &Path, bundle: &Bundle<P>) -> Result<BundleMetadata, BundleError> {
    let kind = bundle.model.kind();
    let format_err =
        |file: &str, detail: String| BundleError::Format { dir: dir.to_path_buf(), file: file.into(), detail };
    if bundle.metadata.model_kind != kind {
        return Err(format_err(
            METADATA,
            format!("model_kind is {} but the model is {}", bundle.metadata.model_kind.as_str(), kind.as_str()),
        ));
    }
    if bundle.metadata.feature_names != bundle.model.feature_names() {
        return Err(format_err(
            METADATA,
            format!(
                "feature_names {:?} differ from the model's {:?}",
                bundle.metadata.feature_names,
                bundle.model.feature_names()
            ),
        ));
    }
    let model_bytes =
        bundle.model.to_native_bytes().map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
    let pipeline_bytes = serde_json::to_vec_pretty(&bundle.pipeline)
        .map_err(|e| format_err(PIPELINE, format!("the pipeline cannot be written as JSON: {e}")))?;
    let model_name = match &bundle.model {
        FittedModel::Smartcore(m) => m.kind().as_str(),
        other => other.kind().as_str(),
    };
    let mlmodel = mlmodel_for(kind, model_name, &bundle.metadata, &model_bytes, &pipeline_bytes);
    let mlmodel_bytes = serde_yaml::to_string(&mlmodel)
        .map_err(|e| format_err(MLMODEL, format!("cannot be written as YAML: {e}")))?
        .into_bytes();

    let files: Vec<(&str, &[u8])> =
        vec![(MLMODEL, &mlmodel_bytes), (kind.model_file(), &model_bytes), (PIPELINE, &pipeline_bytes)];
    let mut metadata = bundle.metadata.clone();
    metadata.files = files.iter().map(|(rel, bytes)| (rel.to_string(), sha256_hex(bytes))).collect();
    let mut metadata_bytes = serde_json::to_vec_pretty(&metadata)
        .map_err(|e| format_err(METADATA, format!("cannot be written as JSON: {e}")))?;
    metadata_bytes.push(b'\n');

    // refuse to replace content; an empty folder is replaced
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BundleError::Exists(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir, "reading the folder")(e)),
    }
    let name = dir
        .file_name()
        .ok_or_else(|| format_err(".", "the bundle path has no folder name".to_string()))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent, "creating the parent folder"))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tmp = parent.join(format!(".{name}.tmp-{}-{stamp}", std::process::id()));
    let result = (|| {
        fs::create_dir(&tmp).map_err(io_err(&tmp, "creating the temporary folder"))?;
        for (rel, bytes) in &files {
            write_file(&tmp, rel, bytes)?;
        }
        write_file(&tmp, METADATA, &metadata_bytes)?;
        if dir.exists() {
            fs::remove_dir(dir).map_err(io_err(dir, "removing the empty folder"))?;
        }
        fs::rename(&tmp, dir).map_err(io_err(dir, "moving the finished bundle into place"))?;
        fs::File::open(&parent).and_then(|d| d.sync_all()).map_err(io_err(&parent, "syncing the parent folder"))
    })();
    if result.is_err() && tmp.exists() {
        // the write already failed; that error is the one to report, a failed cleanup adds nothing to it
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| metadata)
}

// ---- reading ----

/// Every regular file under `root`, as `/`-separated relative paths.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BundleError> {
    let entries = fs::read_dir(dir).map_err(io_err(dir, "listing the folder"))?;
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "listing the folder"))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_err(&path, "reading the file type"))?;
        let rel = path
            .strip_prefix(root)
            .map_err(|_| BundleError::Format {
                dir: root.to_path_buf(),
                file: path.display().to_string(),
                detail: "is outside the bundle".into(),
            })?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if file_type.is_dir() {
            list_files(root, &path, out)?;
        } else if file_type.is_file() {
            out.push(rel);
        } else {
            return Err(BundleError::Format {
                dir: root.to_path_buf(),
                file: rel,
                detail: "is not a regular file (links are not allowed in a bundle)".into(),
            });
        }
    }
    Ok(())
}

/// The bundle's metadata and the bytes of every file it lists, each checked against its sha256.
fn load_verified(dir: &Path) -> Result<(BundleMetadata, BTreeMap<String, Vec<u8>>), BundleError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(BundleError::Format {
                dir: dir.to_path_buf(),
                file: ".".into(),
                detail: "is a file, not a bundle folder".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BundleError::NotFound(dir.to_path_buf())),
        Err(e) => return Err(io_err(dir, "reading the folder")(e)),
    }
    let format_err =
        |file: &str, detail: String| BundleError::Format { dir: dir.to_path_buf(), file: file.into(), detail };
    let metadata_path = dir.join(METADATA);
    let metadata_bytes = match fs::read(&metadata_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format_err(METADATA, "is missing; this is not a kiln bundle".into()));
        }
        Err(e) => return Err(io_err(&metadata_path, "reading")(e)),
    };
    let de = &mut serde_json::Deserializer::from_slice(&metadata_bytes);
    let metadata: BundleMetadata =
        serde_path_to_error::deserialize(de).map_err(|e| format_err(METADATA, e.to_string()))?;
    if metadata.files.is_empty() {
        return Err(format_err(METADATA, "files: lists no file".into()));
    }

    let mut present = Vec::new();
    list_files(dir, dir, &mut present)?;
    let checksum_err =
        |file: &str, problem: String| BundleError::Checksum { dir: dir.to_path_buf(), file: file.into(), problem };
    for rel in &present {
        if rel != METADATA && !metadata.files.contains_key(rel) {
            return Err(checksum_err(rel, "is not listed in kiln/metadata.json".into()));
        }
    }
    let mut contents = BTreeMap::new();
    for (rel, expected) in &metadata.files {
        if rel == METADATA || rel.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(format_err(METADATA, format!("files: '{rel}' is not a valid bundle path")));
        }
        if !present.contains(rel) {
            return Err(checksum_err(rel, "is listed in kiln/metadata.json but missing".into()));
        }
        let path = dir.join(rel);
        let bytes = fs::read(&path).map_err(io_err(&path, "reading"))?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(checksum_err(rel, format!("has sha256 {actual}, kiln/metadata.json says {expected}")));
        }
        contents.insert(rel.clone(), bytes);
    }
    Ok((metadata, contents))
}

/// Checks that `dir` is a complete, untouched bundle: every file listed in `kiln/metadata.json` is there with its
/// sha256, and no other file is. Returns the metadata.
///
/// # Errors
/// [`BundleError::Checksum`] naming the missing, unlisted or changed file; [`BundleError::Format`] when the metadata
/// cannot be parsed; [`BundleError::NotFound`] when `dir` does not exist.
pub fn verify_bundle(dir: &Path) -> Result<BundleMetadata, BundleError> {
    load_verified(dir).map(|(metadata, _)| metadata)
}

fn expect_field(dir: &Path, field: &str, actual: &str, expected: &str) -> Result<(), BundleError> {
    if actual == expected {
        return Ok(());
    }
    Err(BundleError::Format {
        dir: dir.to_path_buf(),
        file: MLMODEL.into(),
        detail: format!("{field}: expected '{expected}', found '{actual}'"),
    })
}

/// Reads the bundle at `dir` after [`verify_bundle`]'s checks, parsing exactly the bytes that were verified.
///
/// # Errors
/// Those of [`verify_bundle`]; [`BundleError::Format`] naming the file and field when `MLmodel`, the metadata or
/// the pipeline do not parse or disagree with each other; [`BundleError::Model`] when the model does not load.
pub fn read_bundle<P: DeserializeOwned>(dir: &Path) -> Result<Bundle<P>, BundleError> {
    let (metadata, mut contents) = load_verified(dir)?;
    let format_err =
        |file: &str, detail: String| BundleError::Format { dir: dir.to_path_buf(), file: file.into(), detail };
    let mut take =
        |rel: &str| contents.remove(rel).ok_or_else(|| format_err(METADATA, format!("files: does not list '{rel}'")));

    let mlmodel_bytes = take(MLMODEL)?;
    let mlmodel: MlModel = serde_yaml::from_slice(&mlmodel_bytes).map_err(|e| format_err(MLMODEL, e.to_string()))?;
    if mlmodel.kiln.format_version != BUNDLE_FORMAT_VERSION {
        return Err(format_err(
            MLMODEL,
            format!(
                "kiln.format_version: this kiln reads version {BUNDLE_FORMAT_VERSION}, the bundle has {}",
                mlmodel.kiln.format_version
            ),
        ));
    }
    expect_field(dir, "kiln.pipeline", &mlmodel.kiln.pipeline, PIPELINE)?;
    expect_field(dir, "kiln.metadata", &mlmodel.kiln.metadata, METADATA)?;
    let kind = metadata.model_kind;
    let missing = || format_err(MLMODEL, format!("flavors.{0}: missing, but model_kind is {0}", kind.as_str()));
    match kind {
        ModelKind::LightGbm => {
            let flavor = mlmodel.flavors.lightgbm.as_ref().ok_or_else(missing)?;
            expect_field(dir, "flavors.lightgbm.data", &flavor.data, kind.model_file())?;
        }
        ModelKind::XgBoost => {
            let flavor = mlmodel.flavors.xgboost.as_ref().ok_or_else(missing)?;
            expect_field(dir, "flavors.xgboost.data", &flavor.data, kind.model_file())?;
            expect_field(dir, "flavors.xgboost.model_format", &flavor.model_format, "json")?;
        }
        ModelKind::Smartcore => {
            let flavor = mlmodel.flavors.kiln_smartcore.as_ref().ok_or_else(|| {
                format_err(MLMODEL, "flavors.kiln_smartcore: missing, but model_kind is smartcore".to_string())
            })?;
            expect_field(dir, "flavors.kiln_smartcore.data", &flavor.data, kind.model_file())?;
        }
    }
    if kind != ModelKind::Smartcore {
        let pyfunc = mlmodel
            .flavors
            .python_function
            .as_ref()
            .ok_or_else(|| format_err(MLMODEL, "flavors.python_function: missing".to_string()))?;
        expect_field(
            dir,
            "flavors.python_function.loader_module",
            &pyfunc.loader_module,
            &format!("mlflow.{}", kind.as_str()),
        )?;
        expect_field(dir, "flavors.python_function.data", &pyfunc.data, kind.model_file())?;
    }

    let model_bytes = take(kind.model_file())?;
    let model = FittedModel::from_native_bytes(kind, &model_bytes)
        .map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
    if model.feature_names() != metadata.feature_names {
        return Err(format_err(
            METADATA,
            format!("feature_names {:?} differ from the model's {:?}", metadata.feature_names, model.feature_names()),
        ));
    }

    let pipeline_bytes = take(PIPELINE)?;
    let de = &mut serde_json::Deserializer::from_slice(&pipeline_bytes);
    let pipeline: P = serde_path_to_error::deserialize(de).map_err(|e| format_err(PIPELINE, e.to_string()))?;
    Ok(Bundle { pipeline, model, metadata })
}
