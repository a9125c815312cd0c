"""Helpers for scripts/bench_serve.sh (HTTP serving and batch scoring benchmark).

  gen DIR TRAIN_ROWS BATCH_ROWS    DIR/train.csv (20 features f01..f20 and the target y: a fixed synthetic
                                   regression, seed 7), DIR/batch.csv (BATCH_ROWS rows of the features, seed 8),
                                   DIR/record.json (one record by name), DIR/records.json (the first 1,000 batch
                                   rows, one record a line) and DIR/mlflow_record(s).json (the same as MLflow's
                                   {"dataframe_split": ...}); values have 6 decimals
  experiment DIR                   DIR/experiment.yaml: tabular regression, LightGBM 500 trees x 31 leaves, no early
                                   stopping, registered as bench_serve@production in DIR/mlruns
  trees MODEL_FILE                 "<trees> <max leaves> <min leaves>" of a LightGBM text model
  free_port                        a free TCP port on 127.0.0.1
  launch LOG URL -- CMD...         start CMD in a session of its own (stdout and stderr to LOG), poll URL every 2 ms
                                   until it answers 200; prints "<pid> <ms from spawn to the first 200>"
  stop PID                         SIGTERM to PID and its descendants (SIGKILL after 10 s)
  memory PID                       "<VmRSS MB> <PSS MB> <processes>" summed over PID and its descendants
  cpu PID                          CPU seconds (user + system) used so far by PID and its descendants
  busy                             CPU seconds the whole machine has been busy (all cores, /proc/stat)
  predict URL BODY_FILE            POST the body, print the prediction (kiln/FastAPI {"prediction"}, MLflow
                                   {"predictions": [...]})
  reference MODEL_FILE RECORD      Python LightGBM's prediction for the record
  wrk FILE                         "<req/s> <p50 ms> <p99 ms> <requests> <non-2xx> <socket errors>" from `wrk
                                   --latency` output
  pandas_batch MODEL_FILE IN OUT   the pandas peer: pd.read_csv(chunksize=CHUNK) + Booster.predict(num_threads=1),
                                   appended to OUT chunk by chunk; its own breakdown on stderr
  compare KILN PANDAS              max |difference| of the prediction columns of two files
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

FEATURES = [f"f{i:02d}" for i in range(1, 21)]
CHUNK = int(os.environ.get("CHUNK", "20000"))


def features(rng, rows):
    import numpy as np

    return np.round(rng.normal(size=(rows, len(FEATURES))), 6)


def gen(out, train_rows, batch_rows):
    import numpy as np
    import pandas as pd

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    x = features(rng, int(train_rows))
    # a smooth nonlinear signal on most features, interactions, and noise
    y = (
        2.0 * np.sin(x[:, 0]) + x[:, 1] ** 2 - 1.5 * x[:, 2] * x[:, 3] + np.abs(x[:, 4]) + 0.8 * x[:, 5]
        + np.tanh(x[:, 6] + x[:, 7]) + 0.5 * x[:, 8:14].sum(axis=1) + 0.3 * np.maximum(x[:, 14], 0) * x[:, 15]
        + 0.2 * x[:, 16:20].sum(axis=1) + rng.normal(scale=0.5, size=len(x))
    )
    df = pd.DataFrame(x, columns=FEATURES)
    df["y"] = np.round(y, 6)
    df.to_csv(f"{out}/train.csv", index=False, float_format="%.6f")
    batch = pd.DataFrame(features(np.random.default_rng(8), int(batch_rows)), columns=FEATURES)
    batch.to_csv(f"{out}/batch.csv", index=False, float_format="%.6f")
    records = [{name: float(batch[name].iloc[i]) for name in FEATURES} for i in range(1000)]
    for name, chosen in [("record", records[:1]), ("records", records)]:
        with open(f"{out}/{name}.json", "w") as f:
            f.write("\n".join(json.dumps(r) for r in chosen) + "\n")
        with open(f"{out}/mlflow_{name}.json", "w") as f:
            f.write("\n".join(json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[r[n] for n in FEATURES]]}})
                              for r in chosen) + "\n")


EXPERIMENT = """\
# Written by scripts/bench_serve.sh: the benchmark model, LightGBM with exactly 500 trees of 31 leaves on 20 features.
name: bench_serve
description: synthetic regression on 20 numeric features (serving benchmark)
data:
  path: {dir}/train.csv
task:
  kind: regression
  target: y
features: __AUTO__
split:
  test_size: 0.2
  seed: 42
model:
  kind: lightgbm
  params:
    objective: regression
    num_iterations: 500   # no early_stopping_rounds: every one of the 500 rounds is kept
    learning_rate: 0.05
    num_leaves: 31
    min_data_in_leaf: 20
    num_threads: 1
    seed: 42
    deterministic: true
gates: {{}}  # none: the benchmark needs the model registered, not a good model
tracking:
  uri: {dir}/mlruns
registry:
  model_name: bench_serve
  alias: production
"""


def experiment(out):
    with open(f"{out}/experiment.yaml", "w") as f:
        f.write(EXPERIMENT.format(dir=os.path.abspath(out)))


def trees(model_file):
    text = open(model_file).read()
    leaves = [int(n) for n in re.findall(r"^num_leaves=(\d+)$", text, re.M)]
    print(len(leaves), max(leaves), min(leaves))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def http_status(host, port, path):
    """The status code of GET path, or None when nothing listens yet."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split()[1]) if head.startswith(b"HTTP/") else None
    except OSError:
        return None


def launch(log, url, cmd):
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        while http_status(host, port, path) != 200:
            if proc.poll() is not None:
                sys.exit(f"{cmd[0]} exited with {proc.returncode} before it was ready; see {log}")
            if time.perf_counter() - started > 180:
                os.killpg(proc.pid, signal.SIGKILL)
                sys.exit(f"{cmd[0]} was not ready after 180 s; see {log}")
            time.sleep(0.002)
        ready_ms = (time.perf_counter() - started) * 1000
    print(proc.pid, f"{ready_ms:.1f}")


def tree(pid):
    """pid and its descendants (from /proc's parent links)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def stop(pid):
    pids = tree(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while time.time() < deadline and any(os.path.exists(f"/proc/{p}") and not zombie(p) for p in pids):
            time.sleep(0.05)
        if not any(os.path.exists(f"/proc/{p}") and not zombie(p) for p in pids):
            return


def zombie(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        return stat[stat.rindex(")") + 2] == "Z"
    except OSError:
        return True


def memory(pid):
    rss = pss = 0
    pids = tree(pid)
    for p in pids:
        try:
            rss += int(re.search(r"^VmRSS:\s+(\d+) kB", open(f"/proc/{p}/status").read(), re.M).group(1))
            pss += int(re.search(r"^Pss:\s+(\d+) kB", open(f"/proc/{p}/smaps_rollup").read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    print(f"{rss / 1024:.1f} {pss / 1024:.1f} {len(pids)}")


def tree_cpu(pid):
    """CPU seconds (user + system) used so far by pid and its descendants (scripts/bench_tune.py's server too)."""
    ticks = 0
    for p in tree(pid):
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu(pid):
    print(f"{tree_cpu(pid):.2f}")


def busy():
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    print(f"{(sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK'):.2f}")


def post_predict(url, body_file):
    import urllib.request

    req = urllib.request.Request(url, data=open(body_file, "rb").read(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.load(r)
    value = answer["prediction"] if "prediction" in answer else answer["predictions"][0]
    if isinstance(value, dict):  # MLflow answers a list of rows for some flavours (kiln's: {"row", "prediction"})
        value = value["prediction"] if "prediction" in value else next(iter(value.values()))
    print(repr(float(value)))


def reference(model_file, record_file):
    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_file=model_file)
    record = json.load(open(record_file))
    row = np.array([[record[n] for n in booster.feature_name()]], dtype=np.float64)
    print(repr(float(booster.predict(row, num_threads=1)[0])))


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    print(f"{rps:.0f} {p50:.3f} {p99:.3f} {requests} {non2xx.group(1) if non2xx else 0} "
          f"{errors.group(1).replace(' ', '') if errors else 'none'}")


def pandas_batch(model_file, path, out, threads="1"):
    """The pandas peer; `threads` is LightGBM's num_threads for predict (0: OpenMP's default, every core)."""
    import lightgbm as lgb
    import pandas as pd

    started = time.perf_counter()
    booster = lgb.Booster(model_file=model_file)
    names = booster.feature_name()
    t_read = t_model = t_write = 0.0
    first, offset = True, 0
    chunks = pd.read_csv(path, chunksize=CHUNK)
    while True:
        t0 = time.perf_counter()
        chunk = next(chunks, None)
        t1 = time.perf_counter()
        t_read += t1 - t0
        if chunk is None:
            break
        x = chunk[names].to_numpy(dtype="float64")
        t2 = time.perf_counter()
        prediction = booster.predict(x, num_threads=int(threads))
        t3 = time.perf_counter()
        t_model += t3 - t2
        rows = range(offset, offset + len(chunk))
        pd.DataFrame({"row": rows, "prediction": prediction}).to_csv(out, mode="w" if first else "a", header=first,
                                                                    index=False)
        t_write += time.perf_counter() - t3
        first, offset = False, offset + len(chunk)
    total = time.perf_counter() - started
    print(f"pandas (LightGBM num_threads={threads}): {offset} rows in {total:.2f} s; time: read+parse {t_read:.2f} s, model prediction {t_model:.2f} s, "
          f"write {t_write:.2f} s", file=sys.stderr)


def compare(a, b):
    import numpy as np
    import pandas as pd

    x, y = pd.read_csv(a), pd.read_csv(b)
    assert len(x) == len(y), (len(x), len(y))
    diff = np.abs(x["prediction"].to_numpy() - y["prediction"].to_numpy())
    print(f"{len(x)} rows, max |diff| {diff.max():.3g}, rows over 1e-9: {(diff > 1e-9).sum()}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "launch":
        launch(args[0], args[1], args[args.index("--") + 1:])
    else:
        {"gen": gen, "experiment": experiment, "trees": trees, "free_port": free_port, "stop": lambda p: stop(int(p)),
         "memory": lambda p: memory(int(p)), "cpu": lambda p: cpu(int(p)), "busy": busy, "predict": post_predict, "reference": reference, "wrk": wrk,
         "pandas_batch": pandas_batch, "compare": compare}[cmd](*args)
