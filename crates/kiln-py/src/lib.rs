//! `kiln._kiln`: the Rust half of kiln's Python package. It hands Python's columns to the `kiln` facade and its
//! predictions back, and nothing else: the frame is built by [`kiln::frame_from_columns`] (a data file's reading
//! rules) and scored by [`kiln::Predictor::predict`] (`kiln predict`'s code path), so a notebook gets `kiln predict`'s
//! numbers bit for bit. `python/kiln/__init__.py` turns pandas and Arrow frames into the plain columns this module
//! takes.
//!
//! Columns cross the boundary as `(name, kind, data)`: kind `f64` with the values' native-endian bytes (NaN for
//! missing), `ms` with UTC milliseconds as native-endian `i64` bytes, `text` with a list of `str` or `None`. Bytes keep
//! a million-row column one copy instead of a million Python floats.

use std::path::PathBuf;

use kiln::{Column, Frame};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

create_exception!(
    _kiln,
    KilnError,
    PyException,
    "A kiln error: args are (message, code), the code one of kiln's stable snake_case codes."
);

fn to_py(e: &kiln::Error) -> PyErr {
    KilnError::new_err((kiln::chain_text(e), e.code().as_str()))
}

fn read_to_py(e: &kiln::ReadError) -> PyErr {
    KilnError::new_err((kiln::chain_text(e), e.code().as_str()))
}

/// A loaded, verified kiln model.
#[pyclass(frozen, module = "kiln._kiln", name = "Predictor")]
struct Predictor {
    inner: kiln::Predictor,
}

/// One column as it crosses the boundary.
type PyColumn = (String, &'static str, Py<PyAny>);

#[pymethods]
impl Predictor {
    /// Loads a model reference (`models:/name@alias`, `models:/name/3`, `runs:/<id>/model`, a bundle folder) from
    /// `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else `./mlruns`.
    #[staticmethod]
    #[pyo3(signature = (reference, tracking_uri = None))]
    fn load(py: Python<'_>, reference: String, tracking_uri: Option<String>) -> PyResult<Predictor> {
        let loaded = py.detach(|| match tracking_uri {
            Some(uri) => kiln::Predictor::load_from(&reference, &uri),
            None => kiln::Predictor::load(&reference),
        });
        loaded.map(|inner| Predictor { inner }).map_err(|e| to_py(&e))
    }

    /// Scores columns `[(name, kind, data)]`, read as a data file with the model's columns would be; `source` names
    /// them in errors. Returns the prediction columns `kiln predict` writes, and how many warm-up rows got none.
    fn predict_columns(
        &self,
        py: Python<'_>,
        source: String,
        columns: Vec<(String, String, Bound<'_, PyAny>)>,
    ) -> PyResult<(Vec<PyColumn>, usize)> {
        let mut owned = Vec::with_capacity(columns.len());
        for (name, kind, data) in columns {
            let column = column_from_py(&name, &kind, &data)?;
            owned.push((name, column));
        }
        let options = self.inner.read_options();
        let (frame, warmup) = py.detach(|| {
            let frame = kiln::frame_from_columns(&source, owned, &options).map_err(|e| read_to_py(&e))?;
            self.score(&frame).map_err(|e| to_py(&e))
        })?;
        Ok((frame_to_py(py, frame)?, warmup))
    }

    /// Scores a CSV or Parquet file as `kiln predict` reads it.
    fn predict_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<(Vec<PyColumn>, usize)> {
        let options = self.inner.read_options();
        let frame = py.detach(|| kiln::read_frame(&path, &options)).map_err(|e| read_to_py(&e))?;
        let (frame, warmup) = py.detach(|| self.score(&frame)).map_err(|e| to_py(&e))?;
        Ok((frame_to_py(py, frame)?, warmup))
    }

    /// The reference as given.
    #[getter]
    fn reference(&self) -> &str {
        self.inner.reference()
    }

    /// The reference with its training run, for messages.
    #[getter]
    fn label(&self) -> &str {
        self.inner.label()
    }

    /// Exactly what was loaded.
    #[getter]
    fn source(&self) -> &str {
        self.inner.source()
    }

    /// `forecast`, `classification` or `regression`.
    #[getter]
    fn task(&self) -> &'static str {
        self.inner.task().as_str()
    }

    /// The raw columns the model reads.
    #[getter]
    fn input_columns(&self) -> Vec<String> {
        self.inner.input_columns()
    }

    /// `(name, version)` of the registered version a `models:/` reference resolved to, else `None`.
    #[getter]
    fn version(&self) -> Option<(String, u64)> {
        self.inner.version().map(|v| (v.name.clone(), v.version))
    }

    /// The bundle's `kiln/metadata.json` (metrics, params, run, kiln version), as JSON text.
    #[getter]
    fn metadata_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.bundle().metadata).map_err(|e| PyValueError::new_err(e.to_string()))
    }
}

impl Predictor {
    fn score(&self, frame: &Frame) -> kiln::Result<(Frame, usize)> {
        let predictions = self.inner.predict(frame)?;
        Ok((predictions.to_frame()?, predictions.warmup_dropped))
    }
}

fn column_from_py(name: &str, kind: &str, data: &Bound<'_, PyAny>) -> PyResult<Column> {
    let bad = |what: &str| PyValueError::new_err(format!("column '{name}': {what}"));
    match kind {
        "f64" | "ms" => {
            let bytes = data.cast::<PyBytes>().map_err(|_| bad("expected bytes"))?.as_bytes();
            if bytes.len() % 8 != 0 {
                return Err(bad("byte length is not a multiple of 8"));
            }
            let words = bytes.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).expect("chunks_exact gives 8 bytes"));
            Ok(if kind == "f64" {
                Column::Numeric(words.map(f64::from_ne_bytes).collect())
            } else {
                Column::Timestamp(words.map(i64::from_ne_bytes).collect())
            })
        }
        "text" => Ok(Column::Categorical(data.extract::<Vec<Option<String>>>()?)),
        other => Err(bad(&format!("unknown kind '{other}' (f64, ms or text)"))),
    }
}

fn frame_to_py(py: Python<'_>, frame: Frame) -> PyResult<Vec<PyColumn>> {
    let mut out = Vec::new();
    for (name, column) in frame.into_columns() {
        let (kind, data): (&'static str, Py<PyAny>) = match column {
            Column::Numeric(v) => (
                "f64",
                PyBytes::new(py, &v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>()).into_any().unbind(),
            ),
            Column::Timestamp(v) => (
                "ms",
                PyBytes::new(py, &v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>()).into_any().unbind(),
            ),
            Column::Categorical(v) => ("text", PyList::new(py, v)?.into_any().unbind()),
        };
        out.push((name, kind, data));
    }
    Ok(out)
}

/// The Rust half of kiln's Python package.
#[pymodule]
fn _kiln(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Predictor>()?;
    m.add("KilnError", m.py().get_type::<KilnError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
