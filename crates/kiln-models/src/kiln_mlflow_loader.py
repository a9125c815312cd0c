"""MLflow's ``python_function`` loader for a kiln model bundle.

Written into every bundle as ``code/kiln_mlflow_loader.py``; MLflow puts ``code/`` on ``sys.path`` and calls
``_load_pyfunc`` with the bundle's folder. The model runs kiln's own Rust pipeline through kiln's Python package
(``import kiln``), so raw rows go in and exactly what ``kiln predict`` writes comes out.
"""

_INSTALL = (
    "This MLflow model was trained by kiln: mlflow.pyfunc runs it through kiln's Python package (`import kiln`), "
    "which is not installed in this environment. Install it from a kiln checkout: `pip install crates/kiln-py` "
    "(builds it with maturin; needs a Rust toolchain), or `make python` there to install it into kiln's own .venv. "
    "Without it, score raw rows with the kiln binary: "
    "`kiln predict --model <this model's folder or its models:/ URI> --input rows.csv --output out.csv`. The native "
    "model (model.lgb / model.json) loads with mlflow.lightgbm / mlflow.xgboost, but it takes kiln's encoded feature "
    "columns, not raw rows."
)


def _load_pyfunc(path, model_config=None):
    try:
        import kiln
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    if not hasattr(kiln, "_PyfuncModel"):
        raise ImportError(
            f"the module 'kiln' found at {getattr(kiln, '__file__', '?')} is not kiln's Python package. " + _INSTALL
        )
    return kiln._PyfuncModel(path)
