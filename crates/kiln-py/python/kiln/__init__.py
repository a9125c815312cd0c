"""kiln in Python: load a model kiln trained and score raw rows with kiln's own Rust pipeline.

    import kiln
    p = kiln.Predictor.load("models:/churn@production")   # $MLFLOW_TRACKING_URI, else ./mlruns
    out = p.predict(df)                                    # pandas or Arrow frame of raw rows, or a file path

``out`` holds exactly what ``kiln predict`` writes for the same rows: the id (or row number) or the forecast's origin
time, a forecast's ``target_time``, ``probability`` and ``class`` (classifier) or ``prediction``. Nothing is
re-implemented here: the rows go to the Rust crate ``kiln`` (the facade the CLI and ``kiln serve`` use), which reads
them with a data file's rules and scores them with the fitted pipeline in the bundle.

The model's MLflow ``python_function`` flavor loads through this package, so ``mlflow.pyfunc.load_model(...)`` and
``mlflow models serve`` take raw records too.
"""

import json
import os

import numpy as np
import pandas as pd

from kiln._kiln import KilnError as _RustKilnError
from kiln._kiln import Predictor as _RustPredictor
from kiln._kiln import __version__

__all__ = ["KilnError", "Predictor", "__version__"]

KilnError = _RustKilnError
KilnError.__doc__ = (
    "A kiln error. str(e) is the message (it names the model, column, row or file); e.code is one of kiln's stable "
    "snake_case codes (the CLI's and kiln serve's)."
)
KilnError.code = property(lambda self: self.args[1] if len(self.args) > 1 else None)
KilnError.__str__ = lambda self: str(self.args[0]) if self.args else ""


class Predictor:
    """A loaded, verified kiln model (the bundle's checksums are checked on load)."""

    def __init__(self, inner):
        self._inner = inner

    @classmethod
    def load(cls, reference, tracking_uri=None):
        """Loads ``reference``: ``models:/name@alias``, ``models:/name/3``, ``models:/name/Production``,
        ``runs:/<run_id>/model`` or a bundle folder, resolved in ``tracking_uri`` (a folder or an MLflow server), else
        ``$MLFLOW_TRACKING_URI``, else ``./mlruns``. Raises ``KilnError`` naming the reference."""
        return cls(_RustPredictor.load(os.fspath(reference), tracking_uri))

    def predict(self, data):
        """Scores raw rows: a pandas DataFrame, a pyarrow Table or RecordBatch, a dict of columns, or the path of a
        CSV or Parquet file. Columns the model does not read are ignored; each column is read as kiln reads a data
        file (text cells trimmed, missing markers such as "" and "NA" are missing, a forecast's rows sorted by time).
        Returns a DataFrame with the columns ``kiln predict`` writes; ``result.attrs["warmup_dropped"]`` says how many
        first rows of a forecast got no prediction (their features need earlier history)."""
        if isinstance(data, (str, os.PathLike)):
            columns, warmup = self._inner.predict_file(os.fspath(data))
            return _to_pandas(columns, warmup, None)
        frame, source = _as_pandas(data)
        wanted = set(self._inner.input_columns)
        columns, time_zones = [], {}
        for name in frame.columns:
            if str(name) in wanted:
                kind, payload, tz = _column(str(name), frame[name])
                columns.append((str(name), kind, payload))
                time_zones[str(name)] = tz
        out, warmup = self._inner.predict_columns(source, columns)
        return _to_pandas(out, warmup, time_zones)

    @property
    def reference(self):
        """The reference as given."""
        return self._inner.reference

    @property
    def label(self):
        """The reference with its training run, for messages."""
        return self._inner.label

    @property
    def source(self):
        """Exactly what was loaded (the bundle's run, logged model or folder)."""
        return self._inner.source

    @property
    def task(self):
        """``forecast``, ``classification`` or ``regression``."""
        return self._inner.task

    @property
    def input_columns(self):
        """The raw columns the model reads."""
        return list(self._inner.input_columns)

    @property
    def version(self):
        """``(name, version)`` of the registered version a ``models:/`` reference resolved to, else ``None``."""
        return self._inner.version

    @property
    def metadata(self):
        """The bundle's metadata: held-out metrics, params, training run, data checksum, kiln version."""
        return json.loads(self._inner.metadata_json)

    def __repr__(self):
        return f"kiln.Predictor({self.label!r}, task={self.task!r})"


def _as_pandas(data):
    if isinstance(data, pd.DataFrame):
        return data, "pandas DataFrame"
    if isinstance(data, dict):
        return pd.DataFrame(data), "dict of columns"
    to_pandas = getattr(data, "to_pandas", None)
    if to_pandas is not None and type(data).__module__.startswith("pyarrow"):
        return to_pandas(), f"pyarrow {type(data).__name__}"
    raise TypeError(
        f"kiln.Predictor.predict takes a pandas DataFrame, a pyarrow Table or RecordBatch, a dict of columns or a "
        f"file path, not {type(data).__name__}"
    )


def _column(name, series):
    """One pandas column as the Rust side takes it: numbers as float64 bytes, times as UTC milliseconds, the rest as
    text, the way a CSV file would hold it."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        # a CSV file holds True/False as text, and kiln reads it as a label
        return "text", [None if pd.isna(v) else str(bool(v)) for v in series], None
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return "f64", np.ascontiguousarray(values).tobytes(), None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(dtype, "tz", None)
        if series.isna().any():
            texts = [None if pd.isna(v) else v.isoformat() for v in series]
            return "text", texts, tz
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else series
        ms = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
        return "ms", np.ascontiguousarray(ms).tobytes(), tz
    return "text", [None if _missing(v) else str(v) for v in series], None


def _missing(v):
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _to_pandas(columns, warmup, time_zones):
    # a forecast's origin and target times come back in the time zone of the input's time column (naive stays naive)
    tz = next((t for t in (time_zones or {}).values() if t is not None), None)
    data = {}
    for name, kind, payload in columns:
        if kind == "f64":
            data[name] = np.frombuffer(payload, dtype=np.float64).copy()
        elif kind == "ms":
            times = pd.Series(np.frombuffer(payload, dtype=np.int64).astype("datetime64[ms]"))
            data[name] = times.dt.tz_localize("UTC").dt.tz_convert(tz) if tz is not None else times
        else:
            data[name] = pd.Series(payload, dtype=object)
    out = pd.DataFrame(data)
    out.attrs["warmup_dropped"] = warmup
    return out


class _PyfuncModel:
    """What the bundle's ``python_function`` flavor loads (``code/kiln_mlflow_loader.py``): MLflow's PyFuncModel calls
    ``predict`` with the raw rows, after checking them against the bundle's signature."""

    def __init__(self, path):
        self._predictor = Predictor.load(os.fspath(path))

    def predict(self, model_input, params=None):
        if isinstance(model_input, list):
            model_input = pd.DataFrame(model_input)
        return self._predictor.predict(model_input)

    def get_raw_model(self):
        return self._predictor
