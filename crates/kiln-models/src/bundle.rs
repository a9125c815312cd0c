//! The model bundle: an MLflow model directory that Python's `mlflow.lightgbm.load_model` (or
//! `mlflow.xgboost.load_model`) and `mlflow.pyfunc.load_model` open, with kiln's own files beside the native model:
//!
//! ```text
//! <dir>/MLmodel              flavors python_function + lightgbm (or xgboost), model_uuid, utc_time_created, run_id?,
//!                            signature?, saved_input_example_info?, kiln {...}
//! <dir>/model.lgb            the LightGBM text model, or
//! <dir>/model.json           the XGBoost JSON model (flavor xgboost: model_class xgboost.core.Booster, format json)
//! <dir>/code/kiln_mlflow_loader.py   python_function's loader: runs the bundle through kiln's Python package
//! <dir>/input_example.json, serving_input_example.json   raw input rows (with a signature; MLflow's split orient)
//! <dir>/kiln/pipeline.json   the fitted feature pipeline (generic: any serde type)
//! <dir>/kiln/metadata.json   BundleMetadata, with the sha256 of every other file
//! <dir>/kiln/profile.json    the reference profile of the training rows (opaque bytes here; kiln-eval reads them)
//! ```
//!
//! `python_function` takes raw rows, not the encoded feature columns: its loader (in the bundle's `code/`, which MLflow
//! puts on `sys.path`) hands the folder to kiln's Python package, which runs kiln's own Rust pipeline, so
//! `mlflow.pyfunc` and `mlflow models serve` give what `kiln predict` gives, and say what to install when the package
//! is missing. The signature describes those raw rows ([`ModelInterface`]). The native flavors (`lightgbm`,
//! `xgboost`) stay as MLflow writes them. Bundles from before (python_function = `mlflow.lightgbm`/`mlflow.xgboost`
//! over the encoded columns) still read.
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

use kiln_domain::Matrix;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kind::{FittedModel, ModelFormat};
use crate::{BundleError, ModelError, kinds};

/// The version of the on-disk layout, written to `MLmodel` under `kiln.format_version`.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// kiln's version, for [`BundleMetadata::kiln_version`].
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

const MLMODEL: &str = "MLmodel";
/// The module MLflow's `python_function` flavor imports from the bundle's `code/` folder.
pub const PYFUNC_LOADER: &str = "kiln_mlflow_loader";
const LOADER_DIR: &str = "code";
const LOADER_FILE: &str = "code/kiln_mlflow_loader.py";
const LOADER_SOURCE: &str = include_str!("kiln_mlflow_loader.py");
const INPUT_EXAMPLE: &str = "input_example.json";
const SERVING_EXAMPLE: &str = "serving_input_example.json";
const PIPELINE: &str = "kiln/pipeline.json";
const METADATA: &str = "kiln/metadata.json";
/// The reference profile of the training rows (`kiln_eval::drift::Profile`), carried as bytes: kiln-models does not
/// read it, so it gains no dependency on kiln-eval. Bundles written before it existed have none.
pub const PROFILE: &str = "kiln/profile.json";
/// Files MLflow's client writes into a model folder it downloads (`registered_model_meta`: the registered name and
/// version of a `models:/` URI). They are not part of the bundle, and nothing kiln loads reads them.
const ADDED_BY_MLFLOW: &[&str] = &["registered_model_meta"];

/// What kiln records about a bundle (`kiln/metadata.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMetadata {
    pub kiln_version: String,
    /// the bundle format of the model ([`crate::ModelFormat::name`]: `lightgbm`, `xgboost`, `smartcore`)
    pub model_kind: String,
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
    /// the model (a direct multi-step forecast: the model of step 1)
    pub model: FittedModel,
    /// a direct multi-step forecast: the models of steps 2, 3, ... (same kind and inputs as `model`), written as
    /// `kiln/steps/step_<k>.<model file>` and named in `MLmodel` under `kiln.step_models`
    pub step_models: Vec<FittedModel>,
    /// one model per series (`model.per_series`): `model` is the first series' own
    pub per_series: Option<PerSeries>,
    pub metadata: BundleMetadata,
    /// `kiln/profile.json`: the reference profile of the training rows, checksummed like every file; `None` in a
    /// bundle written before profiles existed
    pub profile: Option<Vec<u8>>,
}

/// The models of a per-series bundle beyond the first series' (which is the bundle's `model`).
pub struct PerSeries {
    /// every series, sorted; the model of `keys[0]` is the bundle's `model`, of `keys[i]` (i >= 1) `models[i - 1]`
    pub keys: Vec<String>,
    pub models: Vec<FittedModel>,
}

impl std::fmt::Debug for PerSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerSeries").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl<P> Bundle<P> {
    /// The model that forecasts `series`: the series' own in a per-series bundle (`None` for a series it has no model
    /// of), the one model otherwise.
    pub fn model_of(&self, series: &str) -> Option<&FittedModel> {
        match &self.per_series {
            Some(per) => per.model(&self.model, series),
            None => Some(&self.model),
        }
    }

    /// The model's predictions of `x`'s rows, each by its series' model in a per-series bundle (`series[i]` for row
    /// `i`; `None`: a bundle that is not per series).
    ///
    /// # Errors
    /// A series without a model, or the model's error.
    pub fn predict_rows(&self, series: Option<&[&str]>, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match (&self.per_series, series) {
            (Some(per), Some(series)) => per.predict(&self.model, series, x),
            (Some(_), None) => Err(ModelError::Predict("a per-series model needs each row's series".to_string())),
            (None, _) => self.model.predict(x),
        }
    }
}

impl PerSeries {
    /// The model of `series`: `first` (the bundle's model) for `keys[0]`.
    pub fn model<'a>(&'a self, first: &'a FittedModel, series: &str) -> Option<&'a FittedModel> {
        match self.keys.iter().position(|k| k == series)? {
            0 => Some(first),
            i => self.models.get(i - 1),
        }
    }

    /// The predictions of `x`'s rows, each by the model of its series (`series[i]` for row `i`), one batched call
    /// per series.
    ///
    /// # Errors
    /// A series without a model ([`ModelError::UnknownSeries`]), or a model's error.
    pub fn predict(&self, first: &FittedModel, series: &[&str], x: &Matrix) -> Result<Vec<f64>, ModelError> {
        let mut rows_of: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, key) in series.iter().enumerate() {
            rows_of.entry(key).or_default().push(i);
        }
        let mut out = vec![f64::NAN; x.n_rows];
        for (key, rows) in rows_of {
            let model = self.model(first, key).ok_or_else(|| ModelError::UnknownSeries(key.to_string()))?;
            for (&r, p) in rows.iter().zip(model.predict(&x.take_rows(&rows))?) {
                out[r] = p;
            }
        }
        Ok(out)
    }
}

/// Where the model of series `i` (1, 2, ...; series 0's is the model file) of a per-series bundle is written.
fn series_model_file(model_file: &str, i: usize) -> String {
    format!("kiln/series/series_{i}.{model_file}")
}

/// A per-series bundle's models in `MLmodel`: which file forecasts which series.
#[derive(Debug, Serialize, Deserialize)]
struct SeriesModelFile {
    series: String,
    file: String,
}

/// Where the model of step `k` (2, 3, ...) of a direct multi-step bundle is written.
fn step_model_file(model_file: &str, k: usize) -> String {
    format!("kiln/steps/step_{k}.{model_file}")
}

/// What a bundle takes and gives, for MLflow: its signature over the raw input rows and an example of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInterface {
    /// the raw input columns, in order
    pub inputs: Vec<ColSpec>,
    /// the columns a prediction has
    pub outputs: Vec<ColSpec>,
    /// a few raw input rows, one value per input column (numbers, texts, ISO times; `null` where missing)
    pub example: Vec<Vec<serde_json::Value>>,
}

/// One column of an MLflow signature (`mlflow_colspec`): `double`, `long`, `string`, `datetime`, `boolean` or
/// `any`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColSpec {
    #[serde(rename = "type")]
    pub mlflow_type: String,
    pub name: String,
    pub required: bool,
}

impl ColSpec {
    pub fn new(name: &str, mlflow_type: &str) -> ColSpec {
        ColSpec { mlflow_type: mlflow_type.to_string(), name: name.to_string(), required: true }
    }
}

// ---- MLmodel ----

#[derive(Debug, Serialize, Deserialize)]
struct MlModel {
    /// `python_function` (when MLflow can load the model) and the family's flavor, in that order
    flavors: serde_yaml::Mapping,
    model_uuid: String,
    utc_time_created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    /// MLflow's signature: `inputs` and `outputs` as JSON texts of column specs
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<serde_yaml::Mapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_input_example_info: Option<serde_yaml::Mapping>,
    kiln: KilnSection,
}

#[derive(Debug, Serialize, Deserialize)]
struct KilnSection {
    format_version: u32,
    kiln_version: String,
    pipeline: String,
    metadata: String,
    /// a direct multi-step forecast: the model file of every step, step 1 first (the flavor's own model file)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    step_models: Vec<String>,
    /// a per-series bundle: the model file of every series, the first one the flavor's own model file
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    series_models: Vec<SeriesModelFile>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mlmodel_for(
    model: &FittedModel,
    step_files: &[String],
    series_files: Vec<SeriesModelFile>,
    meta: &BundleMetadata,
    interface: &ModelInterface,
    model_bytes: &[u8],
    pipeline_bytes: &[u8],
) -> Result<MlModel, serde_json::Error> {
    let mut h = Sha256::new();
    h.update(model_bytes);
    h.update(pipeline_bytes);
    h.update(meta.created_ms.to_le_bytes());
    let model_uuid = hex::encode(&h.finalize()[..16]);
    let format = model.kind();
    let text = |s: &str| serde_yaml::Value::String(s.to_string());
    let mut flavors = serde_yaml::Mapping::new();
    let mut pyfunc = serde_yaml::Mapping::new();
    pyfunc.insert(text("loader_module"), text(PYFUNC_LOADER));
    pyfunc.insert(text("code"), text(LOADER_DIR));
    flavors.insert(text("python_function"), pyfunc.into());
    let mut native = serde_yaml::Mapping::new();
    native.insert(text("data"), text(format.model_file));
    for (key, value) in model.flavor_fields() {
        native.insert(text(key), text(&value));
    }
    flavors.insert(text(format.flavor), native.into());
    let signature = if interface.inputs.is_empty() {
        None
    } else {
        let mut sig = serde_yaml::Mapping::new();
        sig.insert(text("inputs"), text(&serde_json::to_string(&interface.inputs)?));
        sig.insert(text("outputs"), text(&serde_json::to_string(&interface.outputs)?));
        sig.insert(text("params"), serde_yaml::Value::Null);
        Some(sig)
    };
    let saved_input_example_info = (!interface.example.is_empty()).then(|| {
        let mut info = serde_yaml::Mapping::new();
        info.insert(text("artifact_path"), text(INPUT_EXAMPLE));
        info.insert(text("serving_input_path"), text(SERVING_EXAMPLE));
        info.insert(text("type"), text("dataframe"));
        info.insert(text("pandas_orient"), text("split"));
        info
    });
    Ok(MlModel {
        flavors,
        model_uuid,
        utc_time_created: kiln_domain::utc_datetime_text(meta.created_ms.saturating_mul(1000)),
        run_id: meta.run_id.clone(),
        signature,
        saved_input_example_info,
        kiln: KilnSection {
            format_version: BUNDLE_FORMAT_VERSION,
            kiln_version: meta.kiln_version.clone(),
            pipeline: PIPELINE.into(),
            metadata: METADATA.into(),
            step_models: if step_files.is_empty() {
                Vec::new()
            } else {
                std::iter::once(format.model_file.to_string()).chain(step_files.iter().cloned()).collect()
            },
            series_models: series_files,
        },
    })
}

/// The bytes of `input_example.json` and of `serving_input_example.json`.
type ExampleFiles = (Vec<u8>, Vec<u8>);

/// The example files: MLflow's split orient (`input_example.json`) and the request body `mlflow models serve` takes
/// (`serving_input_example.json`).
fn example_files(interface: &ModelInterface) -> Result<Option<ExampleFiles>, serde_json::Error> {
    if interface.example.is_empty() {
        return Ok(None);
    }
    let columns: Vec<&str> = interface.inputs.iter().map(|c| c.name.as_str()).collect();
    let split = serde_json::json!({"columns": columns, "data": interface.example});
    let serving = serde_json::json!({"dataframe_split": split});
    Ok(Some((serde_json::to_vec(&split)?, serde_json::to_vec_pretty(&serving)?)))
}

/// Checks that `MLmodel` names the model file the way `format` writes it: the family's flavor (its `data` and
/// fixed fields) and, where MLflow can load the model, `python_function`.
fn check_flavors(dir: &Path, mlmodel: &MlModel, format: &ModelFormat) -> Result<(), BundleError> {
    let format_err = |detail: String| BundleError::Format { dir: dir.to_path_buf(), file: MLMODEL.into(), detail };
    let field = |flavor: &serde_yaml::Value, name: &str| -> String {
        flavor.get(name).and_then(serde_yaml::Value::as_str).unwrap_or("").to_string()
    };
    let native = mlmodel
        .flavors
        .get(format.flavor)
        .ok_or_else(|| format_err(format!("flavors.{}: missing, but model_kind is {}", format.flavor, format.name)))?;
    expect_field(dir, &format!("flavors.{}.data", format.flavor), &field(native, "data"), format.model_file)?;
    for (name, value) in format.flavor_checks {
        expect_field(dir, &format!("flavors.{}.{name}", format.flavor), &field(native, name), value)?;
    }
    // kiln's loader over raw rows; bundles written before it have the native loader over the model file
    let pyfunc = mlmodel.flavors.get("python_function");
    match (pyfunc, format.pyfunc_loader) {
        (Some(pyfunc), legacy) => {
            let loader = field(pyfunc, "loader_module");
            if Some(loader.as_str()) == legacy {
                expect_field(dir, "flavors.python_function.data", &field(pyfunc, "data"), format.model_file)?;
            } else {
                expect_field(dir, "flavors.python_function.loader_module", &loader, PYFUNC_LOADER)?;
                expect_field(dir, "flavors.python_function.code", &field(pyfunc, "code"), LOADER_DIR)?;
            }
        }
        (None, Some(_)) => return Err(format_err("flavors.python_function: missing".to_string())),
        (None, None) => {}
    }
    Ok(())
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
    write_bundle_with(dir, bundle, &ModelInterface::default())
}

/// [`write_bundle`] with the model's signature and input example in `MLmodel` (and the example files).
///
/// # Errors
/// As [`write_bundle`].
pub fn write_bundle_with<P: Serialize>(
    dir: &Path,
    bundle: &Bundle<P>,
    interface: &ModelInterface,
) -> Result<BundleMetadata, BundleError> {
    let kind = bundle.model.kind();
    let format_err =
        |file: &str, detail: String| BundleError::Format { dir: dir.to_path_buf(), file: file.into(), detail };
    if bundle.metadata.model_kind != kind.name {
        return Err(format_err(
            METADATA,
            format!("model_kind is {} but the model is {}", bundle.metadata.model_kind, kind.name),
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
    let mut step_files: Vec<(String, Vec<u8>)> = Vec::with_capacity(bundle.step_models.len());
    for (i, step) in bundle.step_models.iter().enumerate() {
        if step.kind().name != kind.name || step.feature_names() != bundle.model.feature_names() {
            return Err(format_err(METADATA, format!("the model of step {} differs in kind or inputs", i + 2)));
        }
        let bytes = step.to_native_bytes().map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
        step_files.push((step_model_file(kind.model_file(), i + 2), bytes));
    }
    let step_names: Vec<String> = step_files.iter().map(|(name, _)| name.clone()).collect();
    let mut series_files: Vec<SeriesModelFile> = Vec::new();
    if let Some(per) = &bundle.per_series {
        if per.keys.len() != per.models.len() + 1 {
            return Err(format_err(METADATA, "a per-series bundle needs one model per series".to_string()));
        }
        series_files.push(SeriesModelFile { series: per.keys[0].clone(), file: kind.model_file().to_string() });
        for (i, m) in per.models.iter().enumerate() {
            if m.kind().name != kind.name || m.feature_names() != bundle.model.feature_names() {
                return Err(format_err(
                    METADATA,
                    format!("the model of series '{}' differs in kind or inputs", per.keys[i + 1]),
                ));
            }
            let bytes = m.to_native_bytes().map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
            let name = series_model_file(kind.model_file(), i + 1);
            series_files.push(SeriesModelFile { series: per.keys[i + 1].clone(), file: name.clone() });
            step_files.push((name, bytes));
        }
    }
    let pipeline_bytes = serde_json::to_vec_pretty(&bundle.pipeline)
        .map_err(|e| format_err(PIPELINE, format!("the pipeline cannot be written as JSON: {e}")))?;
    let mlmodel = mlmodel_for(
        &bundle.model,
        &step_names,
        series_files,
        &bundle.metadata,
        interface,
        &model_bytes,
        &pipeline_bytes,
    )
    .map_err(|e| format_err(MLMODEL, format!("the signature cannot be written as JSON: {e}")))?;
    let mlmodel_bytes = serde_yaml::to_string(&mlmodel)
        .map_err(|e| format_err(MLMODEL, format!("cannot be written as YAML: {e}")))?
        .into_bytes();
    let examples =
        example_files(interface).map_err(|e| format_err(INPUT_EXAMPLE, format!("cannot be written as JSON: {e}")))?;

    let mut files: Vec<(&str, &[u8])> = vec![
        (MLMODEL, &mlmodel_bytes),
        (kind.model_file(), &model_bytes),
        (PIPELINE, &pipeline_bytes),
        (LOADER_FILE, LOADER_SOURCE.as_bytes()),
    ];
    if let Some((example, serving)) = &examples {
        files.push((INPUT_EXAMPLE, example));
        files.push((SERVING_EXAMPLE, serving));
    }
    for (name, bytes) in &step_files {
        files.push((name, bytes));
    }
    if let Some(profile) = &bundle.profile {
        files.push((PROFILE, profile));
    }
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
            return Err(BundleError::NotABundle(dir.to_path_buf()));
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
        if rel != METADATA && !metadata.files.contains_key(rel) && !ADDED_BY_MLFLOW.contains(&rel.as_str()) {
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
    let kind = kinds::format_named(&metadata.model_kind).ok_or_else(|| {
        format_err(
            METADATA,
            format!("model_kind: unknown kind '{}' (known: {})", metadata.model_kind, kinds::format_names().join(", ")),
        )
    })?;
    check_flavors(dir, &mlmodel, kind)?;

    let model_bytes = take(kind.model_file())?;
    let model = (kind.load)(&model_bytes).map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
    if model.feature_names() != metadata.feature_names {
        return Err(format_err(
            METADATA,
            format!("feature_names {:?} differ from the model's {:?}", metadata.feature_names, model.feature_names()),
        ));
    }

    let mut step_models = Vec::new();
    for (i, name) in mlmodel.kiln.step_models.iter().enumerate().skip(1) {
        let expected = step_model_file(kind.model_file(), i + 1);
        expect_field(dir, &format!("kiln.step_models[{i}]"), name, &expected)?;
        let bytes = take(&expected)?;
        let step = (kind.load)(&bytes).map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
        if step.feature_names() != metadata.feature_names {
            return Err(format_err(&expected, "the model of a step reads other features than step 1".to_string()));
        }
        step_models.push(step);
    }

    let per_series = if mlmodel.kiln.series_models.is_empty() {
        None
    } else {
        let mut keys = Vec::with_capacity(mlmodel.kiln.series_models.len());
        let mut models = Vec::new();
        for (i, entry) in mlmodel.kiln.series_models.iter().enumerate() {
            let expected = if i == 0 { kind.model_file().to_string() } else { series_model_file(kind.model_file(), i) };
            expect_field(dir, &format!("kiln.series_models[{i}].file"), &entry.file, &expected)?;
            keys.push(entry.series.clone());
            if i > 0 {
                let bytes = take(&expected)?;
                let m = (kind.load)(&bytes).map_err(|source| BundleError::Model { dir: dir.to_path_buf(), source })?;
                if m.feature_names() != metadata.feature_names {
                    return Err(format_err(&expected, "the model of a series reads other features".to_string()));
                }
                models.push(m);
            }
        }
        Some(PerSeries { keys, models })
    };

    let pipeline_bytes = take(PIPELINE)?;
    let de = &mut serde_json::Deserializer::from_slice(&pipeline_bytes);
    let pipeline: P = serde_path_to_error::deserialize(de).map_err(|e| format_err(PIPELINE, e.to_string()))?;
    let profile = contents.remove(PROFILE);
    Ok(Bundle { pipeline, model, step_models, per_series, metadata, profile })
}
