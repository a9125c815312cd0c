"""Batch-scoring benchmark helpers (driven by scripts/bench_batch.sh).

  gen ROWS DIR            write DIR/etth1.{csv,parquet} (hourly, the ETTh1 columns: ETTh1's rows repeated with fresh
                          consecutive hourly times) and DIR/churn.{csv,parquet} (Telco rows repeated with fresh ids)
  etth1 BUNDLE IN OUT     the pandas peer for the ETTh1 forecaster: pd.read_csv(chunksize=CHUNK) (or pyarrow row
                          groups), the recipe's features with the rows and running state carried between chunks,
                          lightgbm.Booster.predict, the difference target inverted, appended to OUT chunk by chunk
  churn BUNDLE IN OUT     the pandas peer for the churn classifier: the fitted preprocessing of kiln/pipeline.json
                          (median fill, bins, ratio, one-hot), Booster.predict, the class at the bundle's threshold
  compare KILN PANDAS     max |difference| between two prediction files (same rows)

The peers compute what kiln computes, the way a pandas user would write it; `compare` shows they agree.
"""

import json
import os
import re
import sys
import time

import lightgbm
import numpy as np
import pandas as pd

CHUNK = int(os.environ.get("CHUNK", "20000"))


def gen(rows, out):
    os.makedirs(out, exist_ok=True)
    src = pd.read_csv("data/ETTh1.csv")
    df = pd.concat([src] * -(-rows // len(src)), ignore_index=True).iloc[:rows].copy()
    times = pd.date_range("2016-07-01", periods=rows, freq="h")
    df["date"] = times.strftime("%Y-%m-%d %H:%M:%S")
    df.to_csv(f"{out}/etth1.csv", index=False)
    df["date"] = times
    df.to_parquet(f"{out}/etth1.parquet", index=False, row_group_size=100_000)

    src = pd.read_csv("data/Telco-Customer-Churn_IBM.csv", dtype={"TotalCharges": str})
    df = pd.concat([src] * -(-rows // len(src)), ignore_index=True).iloc[:rows].copy()
    df["customerID"] = [f"{i:07d}-BNCH" for i in range(rows)]
    df.to_csv(f"{out}/churn.csv", index=False)
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"].str.strip(), errors="coerce")
    df.to_parquet(f"{out}/churn.parquet", index=False, row_group_size=100_000)


def chunks(path, columns=None):
    """pandas chunks of a CSV (read_csv chunksize) or a Parquet file (pyarrow batches)."""
    if path.endswith(".csv"):
        yield from pd.read_csv(path, chunksize=CHUNK, usecols=columns)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK, columns=columns):
            yield batch.to_pandas()


def writer(out):
    first = [True]
    if out.endswith(".csv"):
        def write(df):
            df.to_csv(out, mode="w" if first[0] else "a", header=first[0], index=False)
            first[0] = False
        return write, lambda: None
    import pyarrow as pa
    import pyarrow.parquet as pq

    state = {}

    def write(df):
        table = pa.Table.from_pandas(df, preserve_index=False)
        if "w" not in state:
            state["w"] = pq.ParquetWriter(out, table.schema)
        state["w"].write_table(table)

    return write, lambda: state["w"].close()


def load(bundle):
    pipeline = json.load(open(f"{bundle}/kiln/pipeline.json"))
    booster = lightgbm.Booster(model_file=f"{bundle}/model.lgb")
    return pipeline, booster


def etth1(bundle, path, out):
    """conf/tasks/etth1.yaml's features, chunk by chunk, exactly as kiln defines them."""
    pipeline, booster = load(bundle)
    recipe = pipeline["input"]["forecast"]
    assert recipe["target"] == "OT" and recipe["target_transform"] == "difference", recipe
    names = pipeline["feature_names"]
    loads = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]
    history, warmup = 168, 168
    tail = None  # the last `history` raw rows
    ewm_state, exp_sum, exp_count, seen = None, 0.0, 0, 0
    alpha = 2.0 / (12 + 1)
    write, close = writer(out)
    for chunk in chunks(path, ["date"] + loads + ["OT"]):
        n = len(chunk)
        chunk["date"] = pd.to_datetime(chunk["date"])
        both = chunk if tail is None else pd.concat([tail, chunk], ignore_index=True)
        start = len(both) - n
        ot, hufl = both["OT"], both["HUFL"]
        f = pd.DataFrame(index=both.index)
        for c in ["OT"] + loads:
            f[c] = both[c]
        for k in [1, 2, 3, 24, 168]:
            f[f"OT_lag_{k}"] = ot.shift(k)
        for p in [1, 24]:
            f[f"OT_diff_{p}"] = ot.diff(p)
        for w in [6, 24]:
            r = ot.rolling(w)
            f[f"OT_rolling_mean_{w}"], f[f"OT_rolling_std_{w}"] = r.mean(), r.std()
            f[f"OT_rolling_min_{w}"], f[f"OT_rolling_max_{w}"] = r.min(), r.max()
        f = f.iloc[start:].copy()
        x = chunk["OT"].to_numpy()
        # EWM (adjust=False) and expanding mean, continued from the previous chunk
        seed = x[:1] if ewm_state is None else np.array([ewm_state])
        ewm = pd.Series(np.concatenate([seed, x])).ewm(alpha=alpha, adjust=False).mean().to_numpy()[1:]
        ewm_state = ewm[-1]
        f["OT_ewm_12"] = ewm
        csum = np.cumsum(x) + exp_sum
        f["OT_expanding_mean"] = csum / (np.arange(1, n + 1) + exp_count)
        exp_sum, exp_count = csum[-1], exp_count + n
        f["HUFL_lag_1"], f["HUFL_lag_24"] = hufl.shift(1).iloc[start:], hufl.shift(24).iloc[start:]
        t = chunk["date"].dt
        for part, values, period in [("hour", t.hour, 24), ("day_of_week", t.dayofweek, 7),
                                     ("day_of_year", t.dayofyear, 366)]:
            v = values.to_numpy(dtype=np.float64)
            f[part], f[f"{part}_sin"], f[f"{part}_cos"] = v, np.sin(2 * np.pi * v / period), np.cos(2 * np.pi * v / period)
        keep = slice(max(0, warmup - seen), n)
        f = f.iloc[keep]
        raw = booster.predict(f[names].to_numpy(dtype=np.float64), num_threads=1)
        write(pd.DataFrame({"date": chunk["date"].iloc[keep].to_numpy(), "prediction": f["OT"].to_numpy() + raw}))
        tail = both.iloc[-history:]
        seen += n
    close()


def model_name(name):
    return re.sub(r'[\s,:\[\]{}"<>]', "_", name)


def churn(bundle, path, out):
    """The fitted preprocessing of kiln/pipeline.json, row by row, then the booster."""
    pipeline, booster = load(bundle)
    steps = [next(iter(s.items())) for s in pipeline["preprocess"]["steps"]]
    names = pipeline["feature_names"]
    decision = pipeline["decision"]
    write, close = writer(out)
    for df in chunks(path):
        ids = df["customerID"].astype(str)
        for kind, step in steps:
            if kind == "impute":
                for c in step["columns"]:
                    df[c["name"]] = pd.to_numeric(df[c["name"]], errors="coerce").fillna(c["value"])
            elif kind == "bin":
                edges = [float(e) for e in step["edges"]]
                df[step["into"]] = pd.cut(df[step["column"]], edges, labels=step["labels"], right=step["right"],
                                          include_lowest=step["include_lowest"]).astype(object)
            elif kind == "ratio":
                df[step["into"]] = df[step["numerator"]] / df[step["denominator"]]
            elif kind == "one_hot":
                for c in step["columns"]:
                    cats = c["categories"][1:] if c["drop_first"] else c["categories"]
                    col = df.pop(c["name"])
                    for cat in cats:
                        df[model_name(f"{c['name']}_{cat}")] = (col == cat).astype(np.float64)
            else:
                raise SystemExit(f"step {kind} is not in this peer")
        proba = booster.predict(df[names].to_numpy(dtype=np.float64), num_threads=1)
        cls = np.where(proba >= decision["threshold"], decision["positive"], decision["negative"])
        write(pd.DataFrame({"customerID": ids.to_numpy(), "probability": proba, "class": cls}))
    close()


def read_any(path):
    return pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)


def compare(a, b):
    x, y = read_any(a), read_any(b)
    assert len(x) == len(y), (len(x), len(y))
    col = "prediction" if "prediction" in x else "probability"
    diff = np.abs(x[col].to_numpy() - y[col].to_numpy())
    print(f"{len(x)} rows, max |diff| {diff.max():.3g}, rows over 1e-9: {(diff > 1e-9).sum()}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    {"gen": lambda: gen(int(args[0]), args[1]), "etth1": lambda: etth1(*args), "churn": lambda: churn(*args),
     "compare": lambda: compare(*args)}[cmd]()
    if cmd != "compare":
        print(f"{cmd}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
