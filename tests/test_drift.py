"""`kiln drift` against scipy, numpy and Evidently on real data, the profile in every bundle, and the exit status.

- Every statistic `kiln drift --json` reports equals scipy 1.17's on the same samples within 1e-9 (absolute, or
  relative above 1): `ks_2samp` (exact branch: Telco split by contract, ECB before/after 2008; asymptotic branch,
  more than 10,000 values: ETTh1 split), `wasserstein_distance`, `jensenshannon` over Evidently's bins,
  `chisquare` as Evidently calls it and `chi2_contingency`; PSI equals the numpy reference below (reference
  deciles `np.unique(np.quantile(ref, [.1, ..., .9]))`, `np.searchsorted(side="right")`, empty bins filled with
  Evidently's 0.0001 or min/1e6).
- Per column, kiln's default test, score and verdict equal Evidently 0.7.23's `DataDriftPreset` (run in
  .venv-drift, pandas < 3, by tests/drift_reference.py) on the Telco file split by contract type (large reference:
  Wasserstein and Jensen-Shannon; small reference of 800 rows: KS, chi-square and the z-test) and on ECB before/after
  2008. Differences: none on these files; Evidently's scores are compared within 1e-9 relative. Columns left out:
  customerID (an identifier, which Evidently would also call categorical) and ECB currencies without values on
  both sides (Evidently drops an all-empty column; kiln compares what it is given).
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from conftest import REPO, run_kiln

DRIFT_PY = REPO / ".venv-drift" / "bin" / "python"
REFERENCE = REPO / "tests" / "drift_reference.py"
TELCO = REPO / "data" / "Telco-Customer-Churn_IBM.csv"
ECB = REPO / "data" / "ecb_eurofxref-hist.csv"
ETTH1 = REPO / "data" / "ETTh1.csv"
TOL = 1e-9

EVIDENTLY_TEST = {
    "K-S p_value": "ks",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
}


def close(got, want, what):
    if got is None:  # JSON has no infinity or NaN: kiln writes null (a category the reference never had: chi2 = inf)
        assert not np.isfinite(want), f"{what}: kiln null, reference {want!r}"
        return
    assert abs(got - want) <= TOL * max(1.0, abs(want)), f"{what}: kiln {got!r}, reference {want!r}"


def drift_json(*args, expect=None):
    proc = run_kiln("drift", *args, "--json", check=False)
    assert proc.returncode in (0, 4), proc.stderr
    if expect is not None:
        assert proc.returncode == expect, proc.stdout[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    d = tmp_path_factory.mktemp("drift")
    telco = pd.read_csv(TELCO)
    m2m = telco[telco.Contract == "Month-to-month"]
    longer = telco[telco.Contract != "Month-to-month"]
    m2m.to_csv(d / "telco_m2m.csv", index=False)
    m2m.head(800).to_csv(d / "telco_m2m_800.csv", index=False)
    longer.to_csv(d / "telco_long.csv", index=False)
    ecb = pd.read_csv(ECB, na_values=["N/A"]).dropna(axis=1, how="all")
    before, after = ecb[ecb.Date < "2008-01-01"], ecb[ecb.Date >= "2008-01-01"]
    keep = [c for c in ecb.columns if c != "Date" and before[c].notna().sum() > 100 and after[c].notna().sum() > 100]
    before[keep].to_csv(d / "ecb_before.csv", index=False)
    after[keep].to_csv(d / "ecb_after.csv", index=False)
    etth1 = pd.read_csv(ETTH1).drop(columns=["date"])
    etth1.head(12000).to_csv(d / "etth1_head.csv", index=False)
    etth1.iloc[12000:].to_csv(d / "etth1_tail.csv", index=False)
    return d, keep


def numeric_values(path, column):
    return pd.to_numeric(pd.read_csv(path)[column], errors="coerce").dropna().to_numpy(dtype=float)


def psi_reference(ref, cur):
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)

    def fill(p):
        p = p.copy()
        m = p[p > 0].min()
        p[p == 0] = m / 1e6 if m <= 0.0001 else 0.0001
        return p

    r, c = fill(r), fill(c)
    return float(np.sum((c - r) * np.log(c / r)))


def js_evidently_numeric(ref, cur):
    if len(np.unique(ref)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        p = np.histogram(ref, bins)[0] / len(ref)
        q = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = sorted(set(ref) | set(cur))
        p = np.array([(ref == k).sum() / len(ref) for k in keys])
        q = np.array([(cur == k).sum() / len(cur) for k in keys])
    return distance.jensenshannon(p, q)


def check_numeric(col, ref, cur):
    name = col["name"]
    if "ks" in col:
        r = stats.ks_2samp(ref, cur)
        close(col["ks"]["statistic"], r.statistic, f"{name} ks statistic")
        close(col["ks"]["pvalue"], r.pvalue, f"{name} ks p-value")
        close(col["wasserstein"], stats.wasserstein_distance(ref, cur), f"{name} wasserstein")
        close(col["wasserstein_norm"], stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001), f"{name} norm")
        close(col["psi"], psi_reference(ref, cur), f"{name} psi")
    close(col["jensenshannon"], js_evidently_numeric(ref, cur), f"{name} jensenshannon")


def check_categorical(col, ref, cur):
    name = col["name"]
    keys = sorted(set(ref) | set(cur))
    rc = np.array([(ref == k).sum() for k in keys], dtype=float)
    cc = np.array([(cur == k).sum() for k in keys], dtype=float)
    close(col["jensenshannon"], distance.jensenshannon(rc / rc.sum(), cc / cc.sum()), f"{name} jensenshannon")
    if len(keys) >= 2:
        r = stats.chisquare(cc, rc * (len(cur) / len(ref)))
        close(col["chisquare"]["statistic"], r.statistic, f"{name} chisquare statistic")
        close(col["chisquare"]["pvalue"], r.pvalue, f"{name} chisquare p-value")
        c = stats.chi2_contingency(np.array([rc, cc]))
        close(col["chi2_contingency"]["statistic"], c.statistic, f"{name} chi2_contingency statistic")
        close(col["chi2_contingency"]["pvalue"], c.pvalue, f"{name} chi2_contingency p-value")


def check_against_scipy(ref_path, cur_path, report):
    ref_df, cur_df = pd.read_csv(ref_path), pd.read_csv(cur_path)
    checked = 0
    for col in report["columns"]:
        name = col["name"]
        if name == "customerID":
            continue
        if col["kind"] == "numeric":
            ref, cur = numeric_values(ref_path, name), numeric_values(cur_path, name)
            if "ks" in col:
                check_numeric(col, ref, cur)
            else:
                check_categorical(col, ref, cur)
        else:
            ref = ref_df[name].dropna().astype(str).str.strip()
            cur = cur_df[name].dropna().astype(str).str.strip()
            check_categorical(col, ref[ref != ""].to_numpy(), cur[cur != ""].to_numpy())
        checked += 1
    return checked


def test_statistics_equal_scipy_exact_ks_branch(splits):
    d, _ = splits
    for ref, cur, n in [("telco_m2m.csv", "telco_long.csv", 20), ("ecb_before.csv", "ecb_after.csv", 10)]:
        report = drift_json("--reference", d / ref, "--input", d / cur)
        assert check_against_scipy(d / ref, d / cur, report) >= n
        assert any("ks" in c and max(c["reference_values"], c["current_values"]) <= 10_000 for c in report["columns"])


def test_statistics_equal_scipy_asymptotic_ks_branch(splits):
    d, _ = splits
    report = drift_json("--reference", d / "etth1_head.csv", "--input", d / "etth1_tail.csv")
    assert check_against_scipy(d / "etth1_head.csv", d / "etth1_tail.csv", report) == 7
    assert all(c["reference_values"] == 12000 for c in report["columns"]), "more than 10,000: the asymptotic p-value"


def evidently(ref, cur, columns):
    assert DRIFT_PY.exists(), "the Evidently venv is missing: run `make venv-drift`"
    out = subprocess.run([str(DRIFT_PY), str(REFERENCE), str(ref), str(cur), *columns], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("case", ["telco", "telco_small_reference", "ecb"])
def test_verdicts_equal_evidentlys_data_drift_preset(splits, case):
    d, ecb_columns = splits
    ref, cur = {
        "telco": ("telco_m2m.csv", "telco_long.csv"),
        "telco_small_reference": ("telco_m2m_800.csv", "telco_long.csv"),
        "ecb": ("ecb_before.csv", "ecb_after.csv"),
    }[case]
    columns = ecb_columns if case == "ecb" else [c for c in pd.read_csv(TELCO).columns if c != "customerID"]
    kiln = drift_json("--reference", d / ref, "--input", d / cur, "--columns", ",".join(columns))
    ev = evidently(d / ref, d / cur, columns)
    assert sorted(c["name"] for c in kiln["columns"]) == sorted(ev["columns"])
    tests_seen = set()
    for col in kiln["columns"]:
        e = ev["columns"][col["name"]]
        assert col["test"] == EVIDENTLY_TEST[e["stattest_name"]], (col["name"], col["test"], e)
        assert col["drifted"] == e["drift_detected"], (col["name"], col["score"], e)
        assert abs(col["score"] - e["drift_score"]) <= TOL * max(1e-300, abs(e["drift_score"])) or (
            abs(col["score"] - e["drift_score"]) <= 1e-12), (col["name"], col["score"], e["drift_score"])
        tests_seen.add(col["test"])
    close(kiln["dataset"]["share"], ev["share"], "share of drifted columns")
    assert kiln["dataset"]["drifted"] == ev["dataset_drift"]
    expected = {"telco": {"wasserstein", "jensenshannon"}, "telco_small_reference": {"ks", "chisquare", "z"},
                "ecb": {"wasserstein"}}[case]
    assert expected <= tests_seen, tests_seen


@pytest.fixture(scope="module")
def churn_bundle(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    run_kiln("train", "--config", REPO / "conf/experiments/churn.yaml", "--tracking-uri", store)
    (model,) = [p for p in store.glob("*/*/artifacts/model") if p.is_dir()]
    return model


def test_every_bundle_carries_a_checksummed_profile(churn_bundle):
    import hashlib

    path = churn_bundle / "kiln" / "profile.json"
    data = path.read_bytes()
    meta = json.loads((churn_bundle / "kiln" / "metadata.json").read_text())
    assert meta["files"]["kiln/profile.json"] == hashlib.sha256(data).hexdigest()
    assert len(data) < 60_000, f"the churn profile is {len(data)} bytes (40 KB when written)"
    profile = json.loads(data)
    assert profile["version"] == 1
    telco = pd.read_csv(TELCO)
    assert {c["name"] for c in profile["inputs"]} <= set(telco.columns)
    tenure = next(c for c in profile["inputs"] if c["name"] == "tenure")
    assert len(tenure["numeric"]["sample"]) == 500
    assert tenure["count"] == profile["rows"] and 4000 < profile["rows"] < 7043
    assert abs(sum(tenure["numeric"]["fractions"]) - 1) < 1e-12
    assert len(tenure["numeric"]["fractions"]) == len(tenure["numeric"]["edges"]) + 1
    assert profile["prediction"]["numeric"]["sample"] and profile["features"]
    # tampering is caught before anything is read
    path.write_bytes(data.replace(b'"version":1', b'"version":1 '))
    try:
        bad = run_kiln("drift", "--model", churn_bundle, "--input", TELCO, check=False)
        assert bad.returncode != 0 and "kiln/profile.json" in bad.stderr, bad.stderr
    finally:
        path.write_bytes(data)


def test_exit_status_0_without_drift_4_with_drift_and_prediction_drift(churn_bundle, splits):
    d, _ = splits
    same = drift_json("--model", churn_bundle, "--input", TELCO, expect=0)
    assert not same["dataset"]["drifted"] and same["prediction"]["test"] == "wasserstein"
    assert not same["prediction"]["drifted"]
    moved = drift_json("--model", churn_bundle, "--input", d / "telco_long.csv", expect=4)
    assert moved["dataset"]["drifted"] and moved["prediction"]["drifted"]
    table = run_kiln("drift", "--model", churn_bundle, "--input", d / "telco_long.csv", check=False)
    assert table.returncode == 4 and "dataset:" in table.stdout and "DRIFT" in table.stdout


def test_bad_input_exits_2_naming_what_is_wrong(churn_bundle, splits, tmp_path):
    d, _ = splits
    pd.read_csv(TELCO).drop(columns=["tenure", "Contract"]).to_csv(tmp_path / "missing.csv", index=False)
    bad = run_kiln("drift", "--model", churn_bundle, "--input", tmp_path / "missing.csv", check=False)
    assert bad.returncode == 2, bad.stderr
    assert "'tenure'" in bad.stderr and "'Contract'" in bad.stderr, bad.stderr
    pd.DataFrame({"x": [1, 2]}).to_csv(tmp_path / "x.csv", index=False)
    bad = run_kiln("drift", "--reference", d / "telco_m2m.csv", "--input", tmp_path / "x.csv", check=False)
    assert bad.returncode == 2 and "no column in common" in bad.stderr, bad.stderr
    bad = run_kiln("drift", "--reference", d / "telco_m2m.csv", "--input", d / "telco_long.csv", "--columns",
                   "tenure,nope", check=False)
    assert bad.returncode == 2 and "'nope'" in bad.stderr, bad.stderr
    bad = run_kiln("drift", "--input", d / "telco_long.csv", check=False)
    assert bad.returncode == 2, bad.stderr


def test_report_writes_html_and_json(churn_bundle, splits, tmp_path):
    d, _ = splits
    proc = run_kiln("drift", "--model", churn_bundle, "--input", d / "telco_long.csv", "--report", tmp_path / "r",
                    check=False)
    assert proc.returncode == 4, proc.stderr
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Dataset drift" in html and "tenure" in html
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["dataset"]["drifted"]
    drifted = [c["name"] for c in report["columns"] if c["drifted"]]
    pngs = sorted((tmp_path / "r").glob("hist_*.png"))
    assert len(pngs) == len(drifted) > 0, (pngs, drifted)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.name in html for p in pngs)


def test_a_registered_model_logs_an_evaluation_run_tagged_with_its_version(tmp_path, splits, monkeypatch):
    d, _ = splits
    store = tmp_path / "mlruns"
    run_kiln("train", "--config", REPO / "conf/experiments/churn.yaml", "--tracking-uri", store, "--register")
    proc = run_kiln("drift", "--model", "models:/churn@production", "--tracking-uri", store, "--input",
                    d / "telco_long.csv", "--report", tmp_path / "r", check=False)
    assert proc.returncode == 4, proc.stderr
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    exp = client.get_experiment_by_name("drift")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["kiln.evaluated.model"] == "churn" and run.data.tags["kiln.evaluated.version"] == "1"
    assert run.data.tags["kiln.evaluation"] == "drift" and run.data.tags["kiln.drift"] == "drift"
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert run.data.metrics["drift/share"] == report["dataset"]["share"]
    tenure = next(c for c in report["columns"] if c["name"] == "tenure")
    assert run.data.metrics["drift/tenure/score"] == tenure["score"]
    # mlflow-artifacts:/ locations are served by a server only; the folder store keeps them under the run
    arts = store / exp.experiment_id / run.info.run_id / "artifacts" / "drift"
    assert (arts / "drift.json").is_file() and (arts / "report" / "report.html").is_file()


def test_series_of_a_panel_model(tmp_path):
    store = tmp_path / "mlruns"
    run_kiln("train", "--config", REPO / "conf/experiments/etth1_panel.yaml", "--tracking-uri", store)
    (model,) = [p for p in store.glob("*/*/artifacts/model") if p.is_dir()]
    profile = json.loads((model / "kiln" / "profile.json").read_text())
    keys = ["HUFL", "HULL", "LUFL", "LULL", "MUFL", "MULL", "OT"]
    assert [s["series"] for s in profile["series"]] == keys
    pd.read_csv(ETTH1).iloc[-3000:].to_csv(tmp_path / "last.csv", index=False)
    report = drift_json("--model", model, "--input", tmp_path / "last.csv", "--series")
    assert [s["series"] for s in report["series"]] == keys
    for s in report["series"]:
        assert [c["name"] for c in s["columns"]] == [s["series"]]
        assert s["prediction"]["current_values"] > 2000, s["prediction"]
    bad = run_kiln("drift", "--model", model, "--input", tmp_path / "last.csv", "--series", "--columns", "nope",
                   check=False)
    assert bad.returncode == 2 and "'nope'" in bad.stderr, bad.stderr


def test_series_of_a_long_panel_model(tmp_path):
    data = pd.read_csv(ETTH1)[["date", "HUFL", "OT", "LULL"]]
    long = data.melt(id_vars="date", var_name="sensor", value_name="value").sort_values(["sensor", "date"])
    long.to_csv(tmp_path / "long.csv", index=False)
    long[long.date >= "2018-01-01"].to_csv(tmp_path / "recent.csv", index=False)
    (tmp_path / "exp.yaml").write_text(f"""\
extends: [{REPO}/conf/base/forecast.yaml, {REPO}/conf/base/lightgbm.yaml]
name: etth1-long
data: {{path: {tmp_path}/long.csv, time_column: date, series_column: sensor}}
task: {{target: value, horizon: 1}}
features:
  - current: {{columns: [value]}}
  - lag: {{column: value, lags: [1, 2, 24]}}
""")
    store = tmp_path / "mlruns"
    run_kiln("train", "--config", tmp_path / "exp.yaml", "--tracking-uri", store)
    (model,) = [p for p in store.glob("*/*/artifacts/model") if p.is_dir()]
    profile = json.loads((model / "kiln" / "profile.json").read_text())
    assert [s["series"] for s in profile["series"]] == ["HUFL", "LULL", "OT"]
    assert all([c["name"] for c in s["inputs"]] == ["value"] for s in profile["series"])
    report = drift_json("--model", model, "--input", tmp_path / "recent.csv", "--series")
    assert [s["series"] for s in report["series"]] == ["HUFL", "LULL", "OT"]
    recent = long[long.date >= "2018-01-01"]
    for s in report["series"]:
        (value,) = s["columns"]
        n = int(recent[recent.sensor == s["series"]].value.notna().sum())
        assert value["name"] == "value" and value["current_values"] == n, (value, n)
        ref = next(p for p in profile["series"] if p["series"] == s["series"])["inputs"][0]["numeric"]["sample"]
        cur = recent[recent.sensor == s["series"]].value.dropna().to_numpy()
        close(value["ks"]["statistic"], stats.ks_2samp(ref, cur).statistic, f"{s['series']} ks")
        close(value["ks"]["pvalue"], stats.ks_2samp(ref, cur).pvalue, f"{s['series']} ks p-value")
