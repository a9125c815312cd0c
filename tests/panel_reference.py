"""mlforecast's side of kiln's panel (many series in one long file) reference tests, run in the pandas < 3 venv.

mlforecast needs pandas < 3, so this script runs with .venv-forecast/bin/python (`make venv-forecast`, pinned by
tests/requirements-forecast.txt), not with the main .venv: the tests call it as a subprocess and read back the Parquet
file it writes. It has no pytest dependency.

Usage:
  .venv-forecast/bin/python tests/panel_reference.py preprocess --input LONG.csv|LONG.parquet \\
      --id unique_id --time ds --target y --output OUT.parquet
  .venv-forecast/bin/python tests/panel_reference.py ecb-panel --input data/ecb_eurofxref-hist.csv \\
      --output PANEL.parquet          (the ECB currencies with a full history, melted to unique_id/ds/y)

preprocess: the feature table of
  MLForecast(models=[], freq=1, lags=[1..7],
             lag_transforms={1: [RollingMean(7), RollingStd(7), RollingMean(28), RollingStd(28)]})
  .preprocess(df, id_col, time_col, target_col, static_features=[], dropna=True)
Output columns: <id> (string), <time> (timestamp, UTC: the row's own original timestamp), <target> (y[t]), lag1..lag7,
rolling_mean_lag1_window_size7, rolling_std_lag1_window_size7, rolling_mean_lag1_window_size28,
rolling_std_lag1_window_size28 (mlforecast's names), sorted by id then time.

Irregular dates: mlforecast's lags and lag transforms are row based within each series, but `preprocess` validates
the timestamps against `freq` and refuses series with gaps ("Series contain missing or duplicate timestamps with the
specified freq"): the ECB rates are business days with the TARGET holidays missing, so neither 'B' nor 'D' passes, and
`fill_gaps` would add rows. So each series' timestamps are replaced by a per-series integer counter 0, 1, 2, ...
(freq=1, which mlforecast validates as gap-free by construction) and the original timestamps are joined back on
(id, counter) afterwards: the rows are exactly the input rows, in their own order within each series.

How this maps onto `kiln features` (current y, lag 1-6, rolling 7/28 mean/std of y, horizon 1): kiln's row at origin
t of series s is this table's row at the NEXT timestamp of s, with kiln's y = lag1, y_lag_k = lag{k+1},
y_rolling_<stat>_<w> = rolling_<stat>_lag1_window_size<w>, and kiln's label = this table's y. kiln also keeps the last
origin of every series (label null), which has no row here.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean, RollingStd

COUNTER = "__kiln_step"  # the per-series integer time index handed to mlforecast
LAGS = list(range(1, 8))
ROLLING_WINDOWS = (7, 28)


# -- input / output -------------------------------------------------------------------------------------------------

def read_long(path, id_col, time_col, target_col):
    """A long panel file (CSV or Parquet) as a frame of id (str), time (datetime64 UTC), target (float64), sorted by
    id then time. Naive timestamps are taken as UTC."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path, columns=[id_col, time_col, target_col])
    else:
        frame = pd.read_csv(path, usecols=[id_col, time_col, target_col], dtype={id_col: str}, na_values=["N/A"])
    frame[id_col] = frame[id_col].astype(str)
    frame[time_col] = pd.to_datetime(frame[time_col], utc=True)
    frame[target_col] = frame[target_col].astype("float64")
    if frame.duplicated([id_col, time_col]).any():
        sys.exit(f"{path}: duplicate ({id_col}, {time_col}) rows")
    return frame.sort_values([id_col, time_col], kind="stable").reset_index(drop=True)


def with_counter(frame, id_col, time_col):
    """The frame with the time column replaced by a per-series integer counter, and the (id, counter) -> original
    timestamp map to restore it. Rows must be sorted by id then time (read_long does)."""
    counter = frame.groupby(id_col, sort=False).cumcount().astype("int64")
    times = pd.DataFrame({id_col: frame[id_col], COUNTER: counter, time_col: frame[time_col]})
    indexed = frame.drop(columns=[time_col]).assign(**{COUNTER: counter})
    return indexed, times


def restore_time(table, times, id_col, time_col):
    """Replace the counter in mlforecast's output by the original UTC timestamps (same position: second column)."""
    restored = table.merge(times, on=[id_col, COUNTER], how="left", validate="one_to_one")
    if restored[time_col].isna().any():
        raise AssertionError("a row of mlforecast's output has no original timestamp")
    columns = [id_col, time_col] + [c for c in table.columns if c not in (id_col, COUNTER)]
    restored = restored[columns].sort_values([id_col, time_col], kind="stable").reset_index(drop=True)
    restored[id_col] = restored[id_col].astype(str)
    restored[time_col] = restored[time_col].astype("datetime64[us, UTC]")
    return restored


def write_parquet(frame, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


# -- mlforecast ----------------------------------------------------------------------------------------------------

def make_forecaster(models=None, num_threads=1):
    """The MLForecast whose features the panel tests compare kiln against (freq=1: the integer counter)."""
    return MLForecast(
        models=models if models is not None else [],
        freq=1,
        lags=LAGS,
        lag_transforms={1: [stat(w) for w in ROLLING_WINDOWS for stat in (RollingMean, RollingStd)]},
        num_threads=num_threads,
    )


def features(frame, id_col, time_col, target_col):
    """mlforecast's preprocess of a long frame (read_long's), with the original timestamps restored."""
    indexed, times = with_counter(frame, id_col, time_col)
    table = make_forecaster().preprocess(indexed, id_col=id_col, time_col=COUNTER, target_col=target_col,
                                         static_features=[], dropna=True)
    return restore_time(table, times, id_col, time_col)


# -- subcommands ---------------------------------------------------------------------------------------------------

def cmd_preprocess(args):
    frame = read_long(args.input, args.id, args.time, args.target)
    table = features(frame, args.id, args.time, args.target)
    write_parquet(table, args.output)
    print(f"{args.output}: {len(table)} rows x {table.shape[1]} columns, {table[args.id].nunique()} series "
          f"(from {len(frame)} input rows)", file=sys.stderr)


def ecb_panel(path):
    """The ECB reference rates (wide: Date newest first, one column per currency, 'N/A' for missing, a trailing empty
    column) as a long panel unique_id/ds/y of the currencies with no missing value at all, sorted by id then date."""
    wide = pd.read_csv(path, na_values=["N/A"])
    wide = wide.loc[:, [c for c in wide.columns if not c.startswith("Unnamed")]]
    currencies = [c for c in wide.columns if c != "Date" and wide[c].notna().all()]
    long = wide.melt(id_vars="Date", value_vars=currencies, var_name="unique_id", value_name="y")
    long = long.rename(columns={"Date": "ds"})[["unique_id", "ds", "y"]]
    long["ds"] = pd.to_datetime(long["ds"], utc=True).astype("datetime64[us, UTC]")
    long["y"] = long["y"].astype("float64")
    return long.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def cmd_ecb_panel(args):
    panel = ecb_panel(args.input)
    if str(args.output).lower().endswith(".csv"):
        panel.assign(ds=panel["ds"].dt.strftime("%Y-%m-%d")).to_csv(args.output, index=False)
    else:
        write_parquet(panel, args.output)
    print(f"{args.output}: {panel['unique_id'].nunique()} series ({', '.join(panel['unique_id'].unique())}), "
          f"{len(panel)} rows", file=sys.stderr)


def parser():
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preprocess", help="mlforecast's feature table of a long panel file")
    pre.add_argument("--input", required=True, help="long panel: CSV or Parquet")
    pre.add_argument("--id", required=True, help="the series column")
    pre.add_argument("--time", required=True, help="the time column")
    pre.add_argument("--target", required=True, help="the target column")
    pre.add_argument("--output", required=True, help="Parquet file to write")
    pre.set_defaults(func=cmd_preprocess)
    ecb = sub.add_parser("ecb-panel", help="melt the wide ECB rates file to a long panel (full-history currencies)")
    ecb.add_argument("--input", default=str(Path(__file__).resolve().parent.parent / "data/ecb_eurofxref-hist.csv"))
    ecb.add_argument("--output", required=True, help="Parquet (or .csv) file to write")
    ecb.set_defaults(func=cmd_ecb_panel)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
