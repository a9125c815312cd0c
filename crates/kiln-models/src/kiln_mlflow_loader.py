"""MLflow's ``python_function`` loader for a kiln model bundle.

Written into every bundle as ``code/kiln_mlflow_loader.py``; MLflow puts ``code/`` on ``sys.path`` and calls
``_load_pyfunc`` with the bundle's folder. The model runs kiln's own Rust pipeline through kiln's Python package
(``import kiln``), so raw rows go in and exactly what ``kiln predict`` writes comes out.
"""

_INSTALL = (
    "This MLflow model was trained by kiln; mlflow.pyfunc runs it with kiln's Python package, which is not "
    "installed in this environment. Install it from a kiln checkout with `make python` (it builds the wheel into "
    "target/wheels and installs it into the project's .venv), or `pip install target/wheels/kiln-*.whl` into your "
    "own environment. The native model (model.lgb / model.json) also loads with mlflow.lightgbm / mlflow.xgboost, "
    "but that one takes the already encoded feature columns, not raw rows."
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
