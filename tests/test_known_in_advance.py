"""Known-in-advance covariates (`- known_in_advance: {columns: [HUFL, MUFL]}`): each column taken at the forecast's
TARGET time, never at the origin, as `<column>_at_target`. On ETTh1 (hourly, one series): the oil temperature OT
forecast with two of its loads, HUFL and MUFL, as the known covariates (real values standing in for planned loads).

  single step (`horizon: h`): origin t gets x[t+h];
  `strategy: direct`: step k's model gets x[t+k] (skforecast 0.26's ForecasterDirect with `exog`);
  `strategy: recursive`: step k from origin t gets x[t+k] (mlforecast 1.1.0's dynamic exogenous columns, the future
  values given to `predict(h, X_df=...)`).

`kiln predict`'s input for such a model: the history, then after the last observed row FUTURE rows whose OT is empty
and whose HUFL and MUFL are filled. Rows with an empty target are never origins; they only hold covariates. The
reference side (tests/panel_reference.py `recursive`/`direct --exog HUFL,MUFL`, run in .venv-forecast since both
libraries need pandas < 3) reads the very same file: its history trains, its first h future rows are X_df / exog.

The kiln recipes mirror the libraries' column order: mlforecast puts dynamic exogenous columns FIRST (features_order_
is the fit frame's own columns, then lags, then transforms), skforecast puts exog LAST (lags, window features, then
C_step_k), so `known_in_advance` is listed first for recursive and last for direct. kiln's `current: {columns: [OT]}`
is the libraries' lag 1 and kiln's lag k their lag k+1; rolling min and max (copies of data values, as in
tests/test_panel.py) rather than means, whose last bits differ between the libraries' running sums and kiln."""

import json
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, free_port, kiln_bin, run_kiln

FORECAST_PY = REPO / ".venv-forecast" / "bin" / "python"
REFERENCE = REPO / "tests" / "panel_reference.py"
ETTH1 = REPO / "data" / "ETTh1.csv"
KNOWN = ["HUFL", "MUFL"]
WARMUP = 23  # the first origin (0-based row) with lag 23 and a 24-hour window: kiln's training origins start here

CONFIG = """name: known-{name}
data: {{path: {path}, time_column: date}}
task: {{kind: forecast, target: OT, horizon: {h}{strategy}}}
features:
{features}split: {{test_size: 0.2}}
model:
  kind: lightgbm
  params: {{objective: regression, num_iterations: 50, learning_rate: 0.1, num_leaves: 15, min_data_in_leaf: 20,
           num_threads: 1, seed: 1, deterministic: true}}
"""
KNOWN_FEATURE = "  - known_in_advance: {columns: [HUFL, MUFL]}\n"
OWN_FEATURES = ("  - current: {columns: [OT]}\n"
                "  - lag: {column: OT, lags: [1, 2, 3, 4, 5, 23]}\n"
                "  - rolling: {column: OT, windows: [24], stats: [min, max]}\n")
RECIPES = {  # strategy -> features in the reference library's column order
    "recursive": KNOWN_FEATURE + OWN_FEATURES,
    "direct": OWN_FEATURES + KNOWN_FEATURE,
    None: KNOWN_FEATURE + OWN_FEATURES,
}
# the same LightGBM through scikit-learn's names, and the same lags/windows in the libraries' terms
LGB_PARAMS = '{"n_estimators": 50, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "n_jobs": 1, ' \
             '"random_state": 1, "deterministic": true}'
REFERENCE_FEATURES = ["--lags", "1,2,3,4,5,6,24", "--rolling-mean", "", "--rolling-minmax", "24",
                      "--exog", ",".join(KNOWN)]


def reference(*args):
    assert FORECAST_PY.exists(), "the mlforecast venv is missing: run `make venv-forecast`"
    proc = subprocess.run([str(FORECAST_PY), str(REFERENCE), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, f"panel_reference.py {' '.join(map(str, args))}:\n{proc.stderr}"


@pytest.fixture(scope="module")
def etth1() -> pd.DataFrame:
    """ETTh1 as text (every value as written, so the files below give kiln and the references the same numbers)."""
    return pd.read_csv(ETTH1, dtype=str, keep_default_na=False)


def utc(values):
    """Times as a UTC series in microseconds, indexed 0..n-1 (naive times are UTC, as kiln reads them)."""
    return pd.to_datetime(pd.Series(values), utc=True).dt.as_unit("us").reset_index(drop=True)


def train(tmp_path, name, h, strategy):
    """Train the recipe of `strategy` (None: one model of the step h ahead) on the whole of ETTh1; returns the store,
    the run id and the run's training origins (`rows/train`)."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(CONFIG.format(name=name, path=ETTH1, h=h, features=RECIPES[strategy],
                                    strategy=f", strategy: {strategy}" if strategy else ""))
    store = tmp_path / "mlruns"
    proc = run_kiln("train", "--config", config, "--tracking-uri", store)
    run_id = proc.stdout.split("\nrun ")[1].split()[0]
    run_dir = next(store.glob(f"*/{run_id}"))
    n_train = int(float((run_dir / "metrics" / "rows" / "train").read_text().split()[1]))
    return store, run_id, n_train


def feature_names(store, run_id):
    bundle = next(store.glob(f"*/{run_id}/artifacts/model"))
    return json.loads((bundle / "kiln" / "metadata.json").read_text())["feature_names"]


def write_input(etth1, path, origin, future, start=0):
    """ETTh1's rows start..origin (observed), then `future` rows after them with OT empty (HUFL, MUFL and the other
    columns as they are): a predict input whose last origin is row `origin`. Returns the frame written (text)."""
    rows = etth1.iloc[start:origin + 1 + future].copy()
    rows.loc[rows.index > origin, "OT"] = ""
    rows.to_csv(path, index=False)
    return rows


def predict(store, run_id, source, out, check=True):
    """kiln predict's CSV as origin (UTC), target_time (UTC), step (int; the horizon for a single-step model),
    prediction: the columns the assertions read."""
    proc = run_kiln("predict", "--model", f"runs:/{run_id}/model", "--input", source, "--output", out,
                    "--tracking-uri", store, check=check)
    if proc.returncode != 0:
        return proc, None
    table = pd.read_csv(out)
    assert {"date", "target_time", "prediction"} <= set(table.columns), list(table.columns)
    frame = pd.DataFrame({
        "origin": utc(table["date"]),
        "target_time": utc(table["target_time"]),
        "step": table["step"].astype("int64") if "step" in table.columns else -1,
        "prediction": table["prediction"].astype("float64"),
    })
    return proc, frame


def relative_gap(ours, theirs):
    ours, theirs = np.asarray(ours, dtype="float64"), np.asarray(theirs, dtype="float64")
    return np.max(np.abs(ours - theirs) / np.abs(theirs))


def against_reference(etth1, tmp_path, command, store, run_id, origin, h):
    """kiln predict and the reference library's `command` (panel_reference.py) on one input: ETTh1 up to row
    `origin`, then h future rows. Returns kiln's whole output, its forecasts of `origin` and the reference's, both by
    step, after checking that no future row is an origin and that both name the same steps and target times."""
    source = tmp_path / "input.csv"
    rows = write_input(etth1, source, origin, h)
    ref_out = tmp_path / f"{command}.parquet"
    reference(command, "--input", source, "--time", "date", "--target", "OT", "--h", h, "--params", LGB_PARAMS,
              *REFERENCE_FEATURES, "--output", ref_out)
    _, kiln = predict(store, run_id, source, tmp_path / "kiln.csv")
    times = utc(rows["date"])
    assert kiln["origin"].max() == times[origin], "a future row (empty OT) is never an origin"
    last = kiln[kiln["origin"] == times[origin]].sort_values("step").reset_index(drop=True)
    ref = pd.read_parquet(ref_out).sort_values("step").reset_index(drop=True)
    assert list(last["step"]) == list(ref["step"]) == list(range(1, h + 1))
    assert list(last["target_time"]) == list(utc(ref["target_time"])) == list(times[origin + 1:])
    assert (utc(ref["origin"]) == times[origin]).all()
    return kiln, last, ref


def test_recursive_known_in_advance_equals_mlforecast_predict_with_x_df(etth1, tmp_path):
    """Recursive, 24 hours: kiln against mlforecast's `fit` (HUFL and MUFL dynamic exogenous, lags 1-6 and 24,
    rolling min and max over 24 hours of lag 1, the same LightGBM) + `predict(h=24, X_df=<the 24 future rows>)`.

    Same training rows: kiln trains the next-hour model on origins WARMUP..WARMUP+n_train-1 (`rows/train`, split
    test_size 0.2, no validation part), whose labels end at row WARMUP+n_train; that row is the last observed row of
    the input (mlforecast's data ends there: its rows are the target rows WARMUP+1..WARMUP+n_train, with HUFL/MUFL at
    the target row = kiln's x[t+1]), and both forecast 24 hours from it, reading HUFL/MUFL of the 24 future rows.
    Within 1e-6 relative, as tests/test_panel.py's recursive test (every feature is a copy of a data value or of an
    earlier forecast); measured on 2026-12-04: 0, bit for bit."""
    h = 24
    store, run_id, n_train = train(tmp_path, "recursive", h, "recursive")
    assert feature_names(store, run_id)[:2] == ["HUFL_at_target", "MUFL_at_target"]
    origin = WARMUP + n_train
    kiln, last, ml = against_reference(etth1, tmp_path, "recursive", store, run_id, origin, h)
    assert len(kiln) == h * (origin + 1 - WARMUP), "every observed origin, every step (the covariates are there)"
    gap = relative_gap(last["prediction"], ml["prediction"])
    assert gap <= 1e-6, pd.concat([last, ml.add_suffix("_ml")], axis=1)


def test_direct_known_in_advance_equals_skforecast_forecaster_direct_with_exog(etth1, tmp_path):
    """Direct, 24 hours (one LightGBM per hour, step k's model reading HUFL/MUFL at t+k): kiln against skforecast
    0.26's `ForecasterDirect(steps=24, lags 1-6 and 24, rolling min and max over 24 hours)` fitted with
    `exog=<HUFL, MUFL>` and predicting with `exog=<the 24 future rows>`.

    Same training rows: kiln's origins WARMUP..WARMUP+n_train-1 (`rows/train`; kiln leaves 23 origins of gap before
    the test part, so every trained origin's 24 labels are training rows); the last one's step-24 label is row
    WARMUP+n_train-1+24, the last observed row of the input, where skforecast's y ends (its origins t0 = window_size
    - 1 = 23 .. n-1-24, the same ones). Asserted equal bit for bit, as tests/test_panel.py's direct test measures:
    every feature is a copy of a data value."""
    h = 24
    store, run_id, n_train = train(tmp_path, "direct", h, "direct")
    assert feature_names(store, run_id)[-2:] == ["HUFL_at_target", "MUFL_at_target"]
    origin = WARMUP + n_train - 1 + h
    _, last, sk = against_reference(etth1, tmp_path, "direct", store, run_id, origin, h)
    assert np.array_equal(last["prediction"].to_numpy(), sk["prediction"].to_numpy()), \
        (relative_gap(last["prediction"], sk["prediction"]), pd.concat([last, sk.add_suffix("_sk")], axis=1))


def extreme(etth1, column, value):
    """A value on the other side of every split on `column`'s range: below its minimum for a value above the
    median, else above its maximum (the references change the forecast of every step this way)."""
    numbers = etth1[column].astype("float64")
    return repr(float(numbers.min() - 1.0)) if float(value) > numbers.median() else repr(float(numbers.max() + 1.0))


def compare(base, out):
    """base and out merged by (origin, step) with a `changed` flag: the same forecasts must exist in both."""
    merged = base.merge(out, on=["origin", "step"], suffixes=("", "_new"), how="outer", validate="one_to_one",
                        indicator=True)
    assert (merged["_merge"] == "both").all(), merged["_merge"].value_counts()
    assert (merged["target_time"] == merged["target_time_new"]).all()
    return merged.assign(changed=merged["prediction"].to_numpy() != merged["prediction_new"].to_numpy())


@pytest.mark.parametrize("strategy, h", [(None, 3), ("recursive", 6), ("direct", 6)])
def test_no_forecast_reads_a_covariate_past_its_target_time(etth1, tmp_path, strategy, h):
    """Leakage: kiln predict on an input and on copies with HUFL/MUFL changed at chosen times (extreme values).
    The origin is row 15000 (a test row), with 200 rows of history before it and h + 12 future rows after it.

    - changed at every time after origin + h: no forecast at all changes (the whole output is equal bit for bit);
    - changed at the target time of step k of that origin (k = 1 and h; single step: the target time origin + h):
      that forecast changes; no forecast for an earlier target time changes; with one model per step (direct, single
      step) no forecast for any other target time changes either; and only origins in [T - h, T - 1] can change;
    - single step, changed at origin + 1 (before its target time): the origin's forecast does not change;
    - changed at a history time s (an observed row): only origins in [s - h, s - 1] change, none for a target
      time before s, and some do change."""
    store, run_id, _ = train(tmp_path, "leak", h, strategy)
    origin, start = 15000, 15000 - 200
    source = tmp_path / "input.csv"
    rows = write_input(etth1, source, origin, h + 12, start=start)
    times = utc(rows["date"])
    at = {t: i for i, t in enumerate(times)}  # UTC time -> position in the input
    o = origin - start  # the origin's position
    _, base = predict(store, run_id, source, tmp_path / "base.csv")
    assert base["origin"].max() == times[o]
    one_model_per_target = strategy != "recursive"

    def changed_at(positions, name):
        edited = rows.copy()
        for p in positions:
            for column in KNOWN:
                edited.iloc[p, edited.columns.get_loc(column)] = extreme(etth1, column, edited.iloc[p][column])
        path = tmp_path / f"{name}.csv"
        edited.to_csv(path, index=False)
        _, out = predict(store, run_id, path, tmp_path / f"{name}_out.csv")
        return out

    beyond = changed_at(range(o + h + 1, len(rows)), "beyond")
    pd.testing.assert_frame_equal(beyond, base, check_exact=True)

    def check(merged, p):
        moved = merged[merged["changed"]]
        assert (moved["target_time"] >= times[p]).all(), moved
        assert moved["origin"].map(at).between(p - h, p - 1).all(), moved
        if one_model_per_target:
            assert (moved["target_time"] == times[p]).all(), moved

    for k in sorted({1, h}):
        merged = compare(base, changed_at([o + k], f"step_{k}"))
        check(merged, o + k)
        mine = merged[merged["origin"] == times[o]]
        target = mine[mine["target_time"] == times[o + k]]
        if strategy is None:
            assert target.empty == (k != h) and mine["changed"].tolist() == [k == h], mine
        else:
            assert len(target) == 1 and target["changed"].all(), mine
            assert not mine[mine["step"] < k]["changed"].any(), mine

    s = o - 50
    merged = compare(base, changed_at([s], "history"))
    check(merged, s)
    assert merged["changed"].any(), "a covariate at a target time changes some forecast"


def test_recursive_input_without_enough_future_rows(etth1, tmp_path):
    """A recursive 6-hour model given only 2 future rows after the last observed row: the last origins cannot get
    the covariates of all their steps, so they are not forecast (a forecast with missing covariates would be silently
    wrong). kiln predict succeeds and writes exactly the origins whose 6 target times are in the input (origins up to
    the last row - 6), every step of each, the same forecasts as from an input with all 6 future rows."""
    h = 6
    store, run_id, _ = train(tmp_path, "short", h, "recursive")
    origin, start = 15000, 15000 - 200
    full_path, short_path = tmp_path / "full.csv", tmp_path / "short.csv"
    rows = write_input(etth1, full_path, origin, h, start=start)
    write_input(etth1, short_path, origin, 2, start=start)
    times = utc(rows["date"])
    o = origin - start
    _, full = predict(store, run_id, full_path, tmp_path / "full_out.csv")
    proc, short = predict(store, run_id, short_path, tmp_path / "short_out.csv", check=False)
    assert proc.returncode == 0, proc.stderr
    last_complete = times[o + 2 - h]  # the last origin whose h target times are all in the short input
    assert short["origin"].max() == last_complete, short.tail(h)
    expected = full[full["origin"] <= last_complete].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.reset_index(drop=True), expected, check_exact=True)


def test_features_take_the_covariate_at_the_target_time(tmp_path):
    """`kiln features` of the single-step recipe with horizon 3: HUFL_at_target and MUFL_at_target of origin t are
    HUFL and MUFL of row t + 3 exactly (the label's row), placed where the recipe lists them (first)."""
    config = tmp_path / "single.yaml"
    config.write_text(CONFIG.format(name="single", path=ETTH1, h=3, features=RECIPES[None], strategy=""))
    out = tmp_path / "features.parquet"
    run_kiln("features", "--config", config, "--output", out)
    table = pd.read_parquet(out)
    columns = [c for c in table.columns if c not in ("date", "label")]
    assert columns[:3] == ["HUFL_at_target", "MUFL_at_target", "OT"], list(table.columns)
    raw = pd.read_csv(ETTH1)  # pandas 3 parses correctly rounded, as kiln (pandas 2 needs float_precision)
    raw["time"] = utc(raw["date"])
    position = pd.Series(np.arange(len(raw)), index=raw["time"])
    labelled = table[table["label"].notna()].reset_index(drop=True)
    rows = position.loc[utc(labelled["date"])].to_numpy()
    assert rows[0] == WARMUP and np.array_equal(rows, np.arange(WARMUP, WARMUP + len(rows)))
    assert np.array_equal(labelled["label"].to_numpy(), raw["OT"].to_numpy()[rows + 3])
    for column in KNOWN:
        assert np.array_equal(labelled[f"{column}_at_target"].to_numpy(), raw[column].to_numpy()[rows + 3]), column


def serve(store, run_id, log):
    """`kiln serve` of a run's bundle on a free port: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([kiln_bin(), "serve", "--model", f"runs:/{run_id}/model", "--tracking-uri", str(store),
                             "--port", str(port)], cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None, open(log).read()
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(open(log).read())


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("strategy, h", [(None, 3), ("recursive", 6), ("direct", 6)])
def test_serve_answers_a_window_with_future_rows_exactly_as_kiln_predict(etth1, tmp_path, strategy, h):
    """POST /predict with a window of 40 observed rows then h future rows (OT null, HUFL and MUFL filled): the
    answer for the window's last observed row equals kiln predict's forecasts of that origin bit for bit, every step.
    A window one future row short is a 422 naming the known columns; /observe refuses the model (observed rows carry
    no future values); /model says the target may be null in a window."""
    store, run_id, _ = train(tmp_path, f"serve-{strategy}", h, strategy)
    origin, start = 15000, 15000 - 40
    source = tmp_path / "input.csv"
    rows = write_input(etth1, source, origin, h, start=start)
    _, kiln = predict(store, run_id, source, tmp_path / "kiln.csv")
    times = utc(rows["date"])
    mine = kiln[kiln["origin"] == times[origin - start]].sort_values("step")

    def window(frame):
        return {"window": [{"date": r["date"], "OT": float(r["OT"]) if r["OT"] else None,
                            "HUFL": float(r["HUFL"]), "MUFL": float(r["MUFL"])} for _, r in frame.iterrows()]}

    proc, url = serve(store, run_id, tmp_path / "serve.log")
    try:
        status, body = post(url, "/predict", window(rows))
        assert status == 200, body
        assert utc([body["time"]])[0] == times[origin - start]
        if strategy is None:
            assert body["prediction"] == mine["prediction"].iloc[0]
            assert utc([body["target_time"]])[0] == times[origin - start + h]
        else:
            assert [s["step"] for s in body["steps"]] == list(range(1, h + 1))
            assert [s["prediction"] for s in body["steps"]] == mine["prediction"].tolist()
            assert list(utc([s["target_time"] for s in body["steps"]])) == list(times[origin - start + 1:])
        status, body = post(url, "/predict", window(rows.iloc[:-1]))
        assert status == 422 and body["error"]["code"] == "not_enough_rows", body
        assert "'HUFL', 'MUFL'" in body["error"]["message"], body
        status, body = post(url, "/observe", {"series": "x", "rows": window(rows.iloc[:40])["window"]})
        assert status == 422 and "known_in_advance" in body["error"]["message"], body
        with urllib.request.urlopen(url + "/model", timeout=10) as r:
            schema = {f["name"]: f for f in json.loads(r.read())["input_schema"]}
        assert schema["OT"]["nullable"] and not schema["HUFL"]["nullable"], schema
    finally:
        proc.kill()
        proc.wait()
