"""`kiln backtest` against independent references: its folds are scikit-learn's splitters' (TimeSeriesSplit on the
forecast design rows, StratifiedKFold on the Telco rows), every per-fold metric equals scikit-learn's on kiln's own
out-of-fold predictions (1e-12), the result does not depend on the number of threads, and no fold sees its future.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

from conftest import REPO, run_kiln

TOL = 1e-12


def run_backtest(tmp_path, config, *flags, name="bt"):
    oof, report = tmp_path / f"{name}.parquet", tmp_path / f"{name}.json"
    proc = run_kiln("backtest", "--config", config, "--oof", oof, "--json", report,
                    "--tracking-uri", tmp_path / "mlruns", *flags)
    return proc, pd.read_parquet(oof), json.loads(report.read_text())


def ecb_usd(path=REPO / "data/ecb_eurofxref-hist.csv"):
    """The ECB USD rates oldest first, as kiln reads them (N/A is missing)."""
    frame = pd.read_csv(path, usecols=["Date", "USD"], na_values=["N/A"])
    frame["Date"] = pd.to_datetime(frame["Date"])
    return frame.sort_values("Date").reset_index(drop=True)


def close(a, b, what):
    assert abs(a - b) <= TOL * max(1.0, abs(b)), f"{what}: kiln {a!r}, reference {b!r}"


def regression_reference(actual, predicted):
    """The metrics kiln reports, computed by scikit-learn (sMAPE, which it lacks, by its usual formula)."""
    denom = np.abs(actual) + np.abs(predicted)
    sape = np.where(denom == 0, 0.0, 2 * np.abs(predicted - actual) / np.where(denom == 0, 1, denom))
    return {
        "rmse": skm.root_mean_squared_error(actual, predicted),
        "mae": skm.mean_absolute_error(actual, predicted),
        "r2": skm.r2_score(actual, predicted),
        "mape": skm.mean_absolute_percentage_error(actual, predicted),
        "smape": float(np.mean(sape)),
    }


@pytest.fixture(scope="module")
def eurusd_backtest(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bt_eurusd")
    return run_backtest(tmp, "conf/experiments/eurusd.yaml", "--folds", "10", "--threads", "2")


def test_eurusd_walk_forward_folds_are_time_series_split_and_metrics_are_sklearn(eurusd_backtest):
    proc, oof, report = eurusd_backtest
    rows = report["rows"]
    n_design = rows["input"] - rows["warmup_dropped"] - rows["no_target_dropped"] - rows["missing_target_dropped"]
    # the design rows are the data's days after the warm-up, oldest first
    days = ecb_usd()["Date"].to_numpy()[rows["warmup_dropped"]:rows["warmup_dropped"] + n_design]
    splits = list(TimeSeriesSplit(n_splits=10).split(np.zeros(n_design)))
    assert len(report["folds"]) == len(splits) == 10
    for fold, (train, test) in zip(report["folds"], splits):
        k = fold["fold"]
        part = oof[oof["fold"] == k]
        assert fold["test_rows"] == len(test) == len(part)
        assert (part["time"].to_numpy() == days[test]).all(), f"fold {k}: test rows differ from TimeSeriesSplit"
        assert fold["train_rows"] + fold["validation_rows"] == len(train)
        assert fold["train_span"] == [str(pd.Timestamp(days[train[0]]).date()), str(pd.Timestamp(days[train[-1]]).date())]
        model = regression_reference(part["actual"].to_numpy(), part["prediction"].to_numpy())
        baseline = regression_reference(part["actual"].to_numpy(), part["baseline"].to_numpy())
        for name in model:
            close(fold["metrics"][f"test/{name}"], model[name], f"fold {k} {name}")
            close(fold["metrics"][f"baseline/test/{name}"], baseline[name], f"fold {k} persistence {name}")
    # the persistence forecast is the day's own rate, the actual the next day's
    usd = ecb_usd().set_index("Date")["USD"]
    assert (oof["baseline"].to_numpy() == usd.loc[oof["time"]].to_numpy()).all()
    # mean and sample standard deviation over the folds
    rmse = np.array([f["metrics"]["test/rmse"] for f in report["folds"]])
    close(report["summary"]["test/rmse"]["mean"], float(np.mean(rmse)), "mean rmse")
    close(report["summary"]["test/rmse"]["sd"], float(np.std(rmse, ddof=1)), "sd rmse")
    # the table on the terminal: a row per fold, then mean and sd, beside persistence
    lines = proc.stdout.splitlines()
    assert any(line.startswith("fold ") and "persistence rmse" in line for line in lines)
    assert sum(1 for line in lines if line.split()[:1] and line.split()[0].isdigit()) == 10
    assert any(line.startswith("mean ") for line in lines) and any(line.startswith("sd ") for line in lines)
    assert proc.stderr.count(" done (") == 10


def test_churn_folds_are_stratified_kfold_and_metrics_are_sklearn(tmp_path):
    _, oof, report = run_backtest(tmp_path, "conf/experiments/churn.yaml", "--folds", "5")
    telco = pd.read_csv(REPO / "data/Telco-Customer-Churn_IBM.csv")
    y = (telco["Churn"] == "Yes").astype(int).to_numpy()
    splits = list(StratifiedKFold(n_splits=5).split(np.zeros(len(y)), y))
    for fold, (_, test) in zip(report["folds"], splits):
        k = fold["fold"]
        part = oof[oof["fold"] == k]
        assert list(part["id"]) == list(telco["customerID"].iloc[test]), f"fold {k}: rows differ from StratifiedKFold"
        actual, proba = part["actual"].to_numpy(), part["prediction"].to_numpy()
        threshold = fold["metrics"]["model/threshold"]
        predicted = (proba >= threshold).astype(int)
        reference = {
            "roc_auc": skm.roc_auc_score(actual, proba),
            "pr_auc": skm.average_precision_score(actual, proba),
            "log_loss": skm.log_loss(actual, proba),
            "accuracy": skm.accuracy_score(actual, predicted),
            "precision": skm.precision_score(actual, predicted),
            "recall": skm.recall_score(actual, predicted),
            "f1": skm.f1_score(actual, predicted),
        }
        for name, value in reference.items():
            close(fold["metrics"][f"test/{name}"], value, f"fold {k} {name}")
        # the baseline's probability is the training rows' share of the positive class
        assert part["baseline"].nunique() == 1 and 0.2 < part["baseline"].iloc[0] < 0.3


def test_etth1_sliding_window_with_test_size_and_gap(tmp_path):
    _, oof, report = run_backtest(tmp_path, "conf/experiments/etth1.yaml", "--folds", "4", "--test-size", "720",
                                  "--gap", "2", "--max-train-size", "4000")
    rows = report["rows"]
    n_design = rows["input"] - rows["warmup_dropped"] - rows["no_target_dropped"] - rows["missing_target_dropped"]
    splits = list(TimeSeriesSplit(n_splits=4, test_size=720, gap=2, max_train_size=4000).split(np.zeros(n_design)))
    for fold, (train, test) in zip(report["folds"], splits):
        assert (fold["train_rows"] + fold["validation_rows"], fold["test_rows"]) == (len(train), len(test)) == (4000, 720)
        part = oof[oof["fold"] == fold["fold"]]
        close(fold["metrics"]["test/rmse"],
              skm.root_mean_squared_error(part["actual"], part["prediction"]), "rmse")


def test_the_result_does_not_depend_on_the_number_of_threads(tmp_path, eurusd_backtest):
    _, oof_two, report_two = eurusd_backtest
    _, oof_one, report_one = run_backtest(tmp_path, "conf/experiments/eurusd.yaml", "--folds", "10", "--threads", "1")
    pd.testing.assert_frame_equal(oof_one, oof_two, check_exact=True)
    assert [f["metrics"] for f in report_one["folds"]] == [f["metrics"] for f in report_two["folds"]]


def test_no_fold_sees_its_future(tmp_path, eurusd_backtest):
    """Changing every row after fold 5's test block leaves folds 1-5 bit for bit; changing the rates fold 5
    forecasts (the day after each of its origins) leaves its fitted pipeline (its training metrics) and its first
    forecast unchanged."""
    _, oof, report = eurusd_backtest
    fold5 = report["folds"][4]
    last_origin = pd.Timestamp(fold5["test_span"][1])
    raw = pd.read_csv(REPO / "data/ecb_eurofxref-hist.csv", dtype=str, keep_default_na=False)
    dates = pd.to_datetime(raw["Date"])

    def backtest_with(mask, name):
        changed = raw.copy()
        usd = pd.to_numeric(changed.loc[mask, "USD"])
        changed.loc[mask, "USD"] = (usd * 1.25 + 0.01).map(repr)
        path = tmp_path / f"{name}.csv"
        changed.to_csv(path, index=False)
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"extends: [{REPO / 'conf/experiments/eurusd.yaml'}]\ndata:\n  path: {path}\n")
        return run_backtest(tmp_path, config, "--folds", "10", name=name)

    # every row after the block: the origins of folds 6-10 and every target after fold 5's last origin
    _, after, after_report = backtest_with(dates > last_origin, "after")
    for k in range(1, 6):
        assert (after[after["fold"] == k]["prediction"].to_numpy()
                == oof[oof["fold"] == k]["prediction"].to_numpy()).all(), f"fold {k} moved"
        assert after_report["folds"][k - 1]["metrics"]["train/rmse"] == report["folds"][k - 1]["metrics"]["train/rmse"]
    assert not (after[after["fold"] == 10]["prediction"].to_numpy()
                == oof[oof["fold"] == 10]["prediction"].to_numpy()).all(), "the change reached no later fold"

    # the rates fold 5 forecasts: its origins' next days
    first_origin = pd.Timestamp(fold5["test_span"][0])
    _, inside, inside_report = backtest_with((dates > first_origin) & (dates <= last_origin + pd.Timedelta(days=7)),
                                             "inside")
    for key in ("train/rmse", "train/mae", "train/r2"):
        assert inside_report["folds"][4]["metrics"][key] == fold5["metrics"][key], key
    assert (inside[inside["fold"] == 5]["prediction"].iloc[0] == oof[oof["fold"] == 5]["prediction"].iloc[0])


@pytest.mark.parametrize("flags, expected", [
    (["--folds", "10000"], "folds"),
    (["--gap", "0", "--test-size", "0"], "test_size"),
    (["--folds", "1"], "folds"),
])
def test_bad_fold_settings_exit_2_naming_the_key(tmp_path, flags, expected):
    store = tmp_path / "mlruns"
    proc = run_kiln("backtest", "--config", "conf/experiments/eurusd.yaml", "--tracking-uri", store, *flags,
                    check=False)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    # nothing logged as a finished run
    metas = [p.read_text() for p in store.glob("*/*/meta.yaml")] if store.exists() else []
    assert not any("status: 3" in m for m in metas), metas


def test_forecast_only_keys_are_refused_for_tabular_rows(tmp_path):
    proc = run_kiln("backtest", "--config", "conf/experiments/churn.yaml", "--gap", "3", "--tracking-uri",
                    tmp_path / "mlruns", check=False)
    assert proc.returncode == 2 and "backtest.gap" in proc.stderr, proc.stderr
    config = tmp_path / "h3.yaml"
    config.write_text(f"extends: [{REPO / 'conf/experiments/etth1.yaml'}]\ntask:\n  horizon: 3\n")
    proc = run_kiln("backtest", "--config", config, "--gap", "1", "--tracking-uri", tmp_path / "mlruns", check=False)
    assert proc.returncode == 2 and "below horizon - 1 = 2" in proc.stderr, proc.stderr
    proc = run_kiln("backtest", "--config", config, "--test-size", "2", "--tracking-uri", tmp_path / "mlruns",
                    check=False)
    assert proc.returncode == 2 and "shorter than the horizon" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# trading simulation


def quantstats_reference(returns, periods, rf=0.0):
    """quantstats 0.0.86 on kiln's own strategy returns."""
    import quantstats as qs
    return {
        "total_return": qs.stats.comp(returns),
        "cagr": qs.stats.cagr(returns, periods=periods),
        "volatility": qs.stats.volatility(returns, periods=periods),
        "sharpe": qs.stats.sharpe(returns, rf=rf, periods=periods),
        "sortino": qs.stats.sortino(returns, rf=rf, periods=periods),
        "max_drawdown": qs.stats.max_drawdown(returns),
        "calmar": qs.stats.calmar(returns, periods=periods),
    }


def numpy_reference(returns, positions):
    """What quantstats does not have, by formula: the longest run of periods below a previous peak (equity from 1
    at the start), the share of periods in the market that earned more than 0, the number of position changes and
    the traded value as a multiple of equity (sum of |position change|, from flat), and the share of periods in the
    market."""
    equity = np.cumprod(1 + returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    longest = run = 0
    for below in equity < peak:
        run = run + 1 if below else 0
        longest = max(longest, run)
    changes = np.abs(np.diff(np.concatenate([[0.0], positions])))
    market = positions != 0
    return {
        "max_drawdown_periods": longest,
        "hit_rate": float(np.mean(returns[market] > 0)),
        "trades": int(np.count_nonzero(changes)),
        "turnover": float(np.sum(changes)),
        "exposure": float(np.mean(market)),
    }


def trading_backtest(tmp_path, base, trading, data=None, name="trading"):
    config = tmp_path / f"{name}.yaml"
    body = f"extends: [{REPO / base}]\nbacktest:\n  folds: 5\n  trading: {trading}\n"
    if data:
        body += f"data:\n  path: {data}\n"
    config.write_text(body)
    return run_backtest(tmp_path, config, name=name)


@pytest.mark.parametrize("case", ["eurusd", "etth1_as_price"])
def test_trading_metrics_equal_quantstats(tmp_path, case):
    if case == "eurusd":
        spec = "{commission: 0.001, slippage_bps: 1, risk_free_rate: 0.02}"
        proc, oof, report = trading_backtest(tmp_path, "conf/experiments/eurusd.yaml", spec)
        periods, rf = 252, 0.02
    else:
        # the oil temperature shifted by 40 degrees is always positive: a price series sampled hourly
        ett = pd.read_csv(REPO / "data/ETTh1.csv")
        ett["OT"] = ett["OT"] + 40.0
        path = tmp_path / "etth1_price.csv"
        ett.to_csv(path, index=False)
        spec = "{long_short: true, threshold: 0.0005, fraction: 0.5, commission: 0.0002}"
        proc, oof, report = trading_backtest(tmp_path, "conf/experiments/etth1.yaml", spec, data=path)
        periods, rf = 8760, 0.0
    assert report["trading"]["periods_per_year"] == periods
    traded = oof.dropna(subset=["strategy_return"])
    index = pd.DatetimeIndex(traded["time"])
    for side, column in (("strategy", "strategy_return"), ("benchmark", "benchmark_return")):
        returns = pd.Series(traded[column].to_numpy(), index=index)
        kiln = report["trading"][side]
        for name, value in quantstats_reference(returns, periods, rf).items():
            close_to = 1e-9 * max(1.0, abs(value))
            assert abs(kiln[name] - value) <= close_to, f"{case} {side} {name}: kiln {kiln[name]}, quantstats {value}"
    positions = traded["position"].to_numpy()
    for name, value in numpy_reference(traded["strategy_return"].to_numpy(), positions).items():
        assert abs(report["trading"]["strategy"][name] - value) <= 1e-9, (case, name)
    # the rule: long when the forecast return beats the threshold, trading at the close of the forecast's origin
    predicted = traded["prediction"] / traded["baseline"] - 1
    if case == "eurusd":
        assert ((positions == 1.0) == (predicted > 0)).all()
        # a position earns the next period's price change, less the costs of the change
        realised = traded["baseline"].shift(-1) / traded["baseline"] - 1
        cost = np.abs(np.diff(np.concatenate([[0.0], positions]))) * (0.001 + 0.0001)
        expected = positions * realised - cost
        assert np.allclose(traded["strategy_return"][:-1], expected[:-1], rtol=0, atol=1e-15)
    else:
        assert ((positions == 0.5) == (predicted > 0.0005)).all()
        assert ((positions == -0.5) == (predicted < -0.0005)).all()
    assert "buy & hold" in proc.stdout and "sharpe" in proc.stdout


def test_trading_needs_a_price_forecast(tmp_path):
    store = ("--tracking-uri", tmp_path / "mlruns")
    proc = run_kiln("backtest", "--config", write_trading_config(tmp_path, "conf/experiments/churn.yaml"), *store,
                    check=False)
    assert proc.returncode == 2 and "backtest.trading needs a forecast of a price" in proc.stderr, proc.stderr
    # the oil temperature crosses 0: not a price
    proc = run_kiln("backtest", "--config", write_trading_config(tmp_path, "conf/experiments/etth1.yaml"), *store,
                    check=False)
    assert proc.returncode == 2 and "needs a price series" in proc.stderr, proc.stderr
    config = tmp_path / "bad_fraction.yaml"
    config.write_text(f"extends: [{REPO / 'conf/experiments/eurusd.yaml'}]\nbacktest:\n  trading: {{fraction: 2}}\n")
    proc = run_kiln("backtest", "--config", config, *store, check=False)
    assert proc.returncode == 2 and "backtest.trading.fraction" in proc.stderr, proc.stderr


def write_trading_config(tmp_path, base):
    config = tmp_path / f"trading_{Path(base).stem}.yaml"
    config.write_text(f"extends: [{REPO / base}]\nbacktest:\n  trading: {{}}\n")
    return config


def test_composite_score_is_the_documented_formula(tmp_path):
    config = tmp_path / "score.yaml"
    config.write_text(f"extends: [{REPO / 'conf/experiments/eurusd.yaml'}]\nbacktest:\n  folds: 6\n"
                      "  trading: {commission: 0.001}\n  score: {weights: {r2: 0.3, sharpe: 0.4, drawdown: 0.3}}\n")
    proc, _, report = run_backtest(tmp_path, config)
    r2 = np.mean([f["metrics"]["test/r2"] for f in report["folds"]])
    strategy = report["trading"]["strategy"]
    expected = 0.3 * r2 + 0.4 * strategy["sharpe"] + 0.3 * (1 - abs(strategy["max_drawdown"]))
    close(report["score"]["value"], expected, "score")
    assert "score = " in proc.stdout and "(1 - |drawdown|)" in proc.stdout
    # an error metric counts negatively (ETTh1's experiment has no backtest section to merge with)
    config.write_text(f"extends: [{REPO / 'conf/experiments/etth1.yaml'}]\nbacktest:\n  folds: 3\n"
                      "  score: {weights: {rmse: 2}}\n")
    _, _, report = run_backtest(tmp_path, config, name="rmse")
    close(report["score"]["value"], -2 * np.mean([f["metrics"]["test/rmse"] for f in report["folds"]]), "rmse score")


@pytest.mark.parametrize("weights, expected", [
    ("{foo: 1}", "backtest.score.weights.foo: unknown metric 'foo'"),
    ("{sharpe: 1}", "backtest.score.weights.sharpe: 'sharpe' is a trading metric"),
    ("{roc_auc: 1}", "unknown metric 'roc_auc'"),
])
def test_score_weights_naming_an_unknown_metric_exit_2(tmp_path, weights, expected):
    config = tmp_path / "bad_score.yaml"
    # ETTh1's experiment has no backtest section (no trading) to merge with
    config.write_text(f"extends: [{REPO / 'conf/experiments/etth1.yaml'}]\nbacktest:\n  score: {{weights: {weights}}}\n")
    proc = run_kiln("backtest", "--config", config, "--tracking-uri", tmp_path / "mlruns", check=False)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert "fold 1/" not in proc.stderr, "nothing runs before the names are checked"


def test_a_backtest_is_one_tracked_run_with_per_fold_steps(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    config = tmp_path / "tracked.yaml"
    config.write_text(f"extends: [{REPO / 'conf/experiments/eurusd.yaml'}]\nbacktest:\n  folds: 4\n"
                      "  trading: {commission: 0.001}\n  score: {weights: {r2: 0.5, sharpe: 0.5}}\n")
    proc, _, report = run_backtest(tmp_path, config)
    run_id = proc.stdout.split("\nrun ")[1].split()[0]
    client = MlflowClient(f"file://{tmp_path / 'mlruns'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kiln.run.kind"] == "backtest"
    assert run.data.params["backtest.folds"] == "4" and run.data.params["backtest.splitter"] == "walk_forward"
    assert run.data.params["model.kind"] == "lightgbm"
    history = client.get_metric_history(run_id, "folds/test/rmse")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == [f["metrics"]["test/rmse"] for f in report["folds"]]
    assert run.data.metrics["mean/test/rmse"] == report["summary"]["test/rmse"]["mean"]
    assert run.data.metrics["trading/strategy/sharpe"] == report["trading"]["strategy"]["sharpe"]
    assert run.data.metrics["score"] == report["score"]["value"]
    # the folder store keeps a run's artifacts under <exp>/<run>/artifacts (its URIs are mlflow-artifacts:/, which
    # only a server resolves)
    artifacts = {p.name for p in (tmp_path / "mlruns" / run.info.experiment_id / run_id / "artifacts").iterdir()}
    assert {"config.yaml", "backtest.json", "folds.csv", "oof_predictions.parquet", "actual_vs_predicted.png",
            "equity.png", "drawdown.png"} <= artifacts, artifacts
    # the data as the run's dataset input, as a train run records it
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["ecb_eurofxref-hist"]
    note = run.data.tags["mlflow.note.content"]
    assert "| fold | train | test |" in note and "buy & hold" in note and "score = " in note


def test_refit_every_rolls_the_last_fitted_model_forward(tmp_path, eurusd_backtest):
    _, oof_all, report_all = eurusd_backtest
    _, oof, report = run_backtest(tmp_path, "conf/experiments/eurusd.yaml", "--folds", "10", "--refit-every", "3")
    assert [f["fitted_on"] for f in report["folds"]] == [1, 1, 1, 4, 4, 4, 7, 7, 7, 10]
    for k in (1, 4, 7, 10):
        # a refitted fold is the same fit as with refit on every fold, bit for bit
        assert (oof[oof["fold"] == k]["prediction"].to_numpy() == oof_all[oof_all["fold"] == k]["prediction"].to_numpy()).all()
    for k in (2, 3):
        # fold 1's pipeline and model, its training rows and metrics, scoring fold k's test rows
        assert report["folds"][k - 1]["metrics"]["train/rmse"] == report["folds"][0]["metrics"]["train/rmse"]
        assert report["folds"][k - 1]["train_span"] == report["folds"][0]["train_span"]
        assert report["folds"][k - 1]["test_span"] == report_all["folds"][k - 1]["test_span"]
        part = oof[oof["fold"] == k]
        close(report["folds"][k - 1]["metrics"]["test/rmse"],
              skm.root_mean_squared_error(part["actual"], part["prediction"]), "rolled rmse")
    assert not (oof[oof["fold"] == 2]["prediction"].to_numpy() == oof_all[oof_all["fold"] == 2]["prediction"].to_numpy()).all()
    proc = run_kiln("backtest", "--config", "conf/experiments/eurusd.yaml", "--refit-every", "0", "--tracking-uri",
                    tmp_path / "m0", check=False)
    assert proc.returncode == 2 and "backtest.refit_every" in proc.stderr, proc.stderr


def test_train_cv_reports_folds_of_the_training_part(tmp_path):
    store = tmp_path / "mlruns"
    proc = run_kiln("train", "--config", "conf/experiments/churn.yaml", "--cv", "5", "--tracking-uri", store)
    assert "cross-validation on 5 folds of the training part" in proc.stdout
    rows_line = next(line for line in proc.stdout.splitlines() if line.startswith("rows: "))
    train = int(rows_line.split("train ")[1].split(" ")[0])
    validation = int(rows_line.split("(+")[1].split(" ")[0])
    # StratifiedKFold(5) over the training part's labels: its fold sizes, the test part never folded
    expected = [len(test) for _, test in StratifiedKFold(5).split(np.zeros(train + validation),
                                                             np.zeros(train + validation))]
    run_dir = next(p.parent for p in store.glob("*/*/meta.yaml") if (p.parent / "metrics").is_dir())
    history = (run_dir / "metrics/cv/folds/test/roc_auc").read_text().split("\n")
    steps = [int(line.split()[2]) for line in history if line]
    assert steps == [1, 2, 3, 4, 5]
    fold_rows = [line.split()[3] for line in proc.stdout.split("training part")[1].splitlines()[3:8]]
    assert [int(n) for n in fold_rows] == expected
    mean = float((run_dir / "metrics/cv/mean/test/roc_auc").read_text().split()[1])
    values = [float(line.split()[1]) for line in history if line]
    close(mean, float(np.mean(values)), "cv mean roc_auc")
    assert (run_dir / "artifacts/cv_folds.csv").is_file()


def test_seasonal_naive_baseline_is_the_value_one_season_before_the_target(tmp_path):
    _, oof, report = run_backtest(tmp_path, "conf/experiments/etth1.yaml", "--folds", "3", "--season", "24")
    ot = pd.read_csv(REPO / "data/ETTh1.csv", parse_dates=["date"]).set_index("date")["OT"]
    for fold in report["folds"]:
        part = oof[oof["fold"] == fold["fold"]]
        # horizon 1: the target is at t + 1h, one season (24 rows of hourly data) before it is t - 23h
        naive = ot.loc[pd.DatetimeIndex(part["time"]) - pd.Timedelta(hours=23)].to_numpy()
        close(fold["metrics"]["seasonal/test/rmse"], skm.root_mean_squared_error(part["actual"], naive),
              f"fold {fold['fold']} seasonal rmse")
        close(fold["metrics"]["seasonal/test/mae"], skm.mean_absolute_error(part["actual"], naive), "seasonal mae")
    proc = run_kiln("backtest", "--config", "conf/experiments/churn.yaml", "--season", "7", "--tracking-uri",
                    tmp_path / "m", check=False)
    assert proc.returncode == 2 and "backtest.season" in proc.stderr, proc.stderr


def test_purge_and_embargo_leave_training_rows_out_around_test_rows(tmp_path):
    _, _, plain = run_backtest(tmp_path, "conf/experiments/churn.yaml", "--folds", "5", name="plain")
    _, _, purged = run_backtest(tmp_path, "conf/experiments/churn.yaml", "--folds", "5", "--purge", "4",
                                "--embargo", "6", name="purged")
    for a, b in zip(plain["folds"], purged["folds"]):
        assert a["test_rows"] == b["test_rows"]
        assert b["train_rows"] + b["validation_rows"] < a["train_rows"] + a["validation_rows"]
    proc = run_kiln("backtest", "--config", "conf/experiments/eurusd.yaml", "--purge", "3", "--tracking-uri",
                    tmp_path / "m", check=False)
    assert proc.returncode == 2 and "backtest.gap" in proc.stderr, proc.stderr


def test_step_spaces_the_test_blocks(tmp_path):
    _, oof, report = run_backtest(tmp_path, "conf/experiments/etth1.yaml", "--folds", "4", "--test-size", "48",
                                  "--step", "24")
    rows = report["rows"]
    n_design = rows["input"] - rows["warmup_dropped"] - rows["no_target_dropped"] - rows["missing_target_dropped"]
    # overlapping blocks of 48 rows starting every 24, the last ending with the data
    times = [pd.Timestamp(t) for t in oof.groupby("fold")["time"].min()]
    assert [(b - a) / pd.Timedelta(hours=1) for a, b in zip(times, times[1:])] == [24, 24, 24]
    assert all(f["test_rows"] == 48 for f in report["folds"])
    assert report["folds"][0]["train_rows"] + report["folds"][0]["validation_rows"] == n_design - 48 - 3 * 24
    config = tmp_path / "step_trading.yaml"
    config.write_text(f"extends: [{REPO / 'conf/experiments/eurusd.yaml'}]\nbacktest:\n  step: 5\n")
    proc = run_kiln("backtest", "--config", config, "--tracking-uri", tmp_path / "m", check=False)
    assert proc.returncode == 2 and "backtest.step" in proc.stderr, proc.stderr


def test_tabular_regression_folds_are_kfold_and_metrics_are_sklearn(tmp_path):
    """A regression on the Telco rows (monthly charges from the other columns): KFold(5, shuffle=False) folds, the
    training rows' mean as the baseline."""
    config = tmp_path / "charges.yaml"
    config.write_text(f"""extends: [{REPO / 'conf/base/tracking.yaml'}, {REPO / 'conf/base/lightgbm.yaml'}]
name: telco_charges
data:
  path: {REPO / 'data/Telco-Customer-Churn_IBM.csv'}
  id_column: customerID
  exclude: [Churn, TotalCharges]
task:
  kind: regression
  target: MonthlyCharges
features: __AUTO__
preprocess:
  - one_hot: {{columns: categorical, unknown: ignore, drop: if_binary}}
split:
  test_size: 0.2
  validation_size: 0.1
  seed: 42
""")
    _, oof, report = run_backtest(tmp_path, config, "--folds", "5")
    from sklearn.model_selection import KFold
    telco = pd.read_csv(REPO / "data/Telco-Customer-Churn_IBM.csv")
    for fold, (train, test) in zip(report["folds"], KFold(5).split(np.zeros(len(telco)))):
        part = oof[oof["fold"] == fold["fold"]]
        assert list(part["id"]) == list(telco["customerID"].iloc[test])
        model = regression_reference(part["actual"].to_numpy(), part["prediction"].to_numpy())
        for name in ("rmse", "mae", "r2"):
            close(fold["metrics"][f"test/{name}"], model[name], f"fold {fold['fold']} {name}")
        # the baseline: the mean of the fold's training rows (less its validation rows)
        assert part["baseline"].nunique() == 1
        close(fold["metrics"]["baseline/test/rmse"],
              skm.root_mean_squared_error(part["actual"], part["baseline"]), "mean baseline rmse")
