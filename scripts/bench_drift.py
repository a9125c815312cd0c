"""`kiln drift` against Evidently's data drift report on the same two files, in one run.

    python scripts/bench_drift.py [--rows 1000000] [--reference-rows 100000] [--work DIR] [--kiln PATH]

Generates 20 numeric columns (seeded normals; half of them shifted by 0.2 sd in the current file, so the dataset
drifts), writes a reference Parquet file of --reference-rows rows and a current one of --rows rows, then runs each
tool in a fresh process under `/usr/bin/time -v`:

- `kiln drift --reference REF --input CUR --json` (reads both files in chunks, every statistic of every column);
- Evidently 0.7.23 (this script with `evidently REF CUR`, run by .venv-drift's Python: `pd.read_parquet` both, then
  the legacy `DataDriftPreset` report with its default tests: normed Wasserstein for these columns).

The script checks that both chose the same test and found the same drifted columns, with scores equal to 1e-9,
then prints wall time and peak RSS. Do not build while it runs.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 20


def generate(work: Path, rows: int, reference_rows: int):
    import numpy as np
    import pandas as pd

    ref_path, cur_path = work / f"drift_ref_{reference_rows}.parquet", work / f"drift_cur_{rows}.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    rs = np.random.RandomState(42)
    ref = pd.DataFrame({f"x{j:02d}": rs.standard_normal(reference_rows) * (1 + j) for j in range(COLUMNS)})
    cur = pd.DataFrame(
        {f"x{j:02d}": (rs.standard_normal(rows) + (0.2 if j % 2 else 0.0)) * (1 + j) for j in range(COLUMNS)}
    )
    ref.to_parquet(ref_path, index=False)
    cur.to_parquet(cur_path, index=False)
    return ref_path, cur_path


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 4):
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return proc.stdout, wall, rss_kb / 1024


def evidently(ref_path, cur_path):
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.report import Report

    start = time.perf_counter()
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    read = time.perf_counter() - start
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref, current_data=cur)
    result = report.as_dict()["metrics"][1]["result"]
    print(json.dumps({
        "read_s": read,
        "report_s": time.perf_counter() - start - read,
        "columns": {k: [v["stattest_name"], v["drift_score"], v["drift_detected"]]
                    for k, v in result["drift_by_columns"].items()},
    }))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "evidently":
        return evidently(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reference-rows", type=int, default=100_000)
    p.add_argument("--work", type=Path, default=Path("/tmp/kiln-bench-drift"))
    p.add_argument("--kiln", default=str(Path.home() / ".cache/kiln-target/release/kiln"))
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ref, cur = generate(args.work, args.rows, args.reference_rows)
    out, kiln_wall, kiln_mb = timed([args.kiln, "drift", "--reference", ref, "--input", cur, "--json"])
    kiln = json.loads(out)
    ev_py = ROOT / ".venv-drift" / "bin" / "python"
    out, ev_wall, ev_mb = timed([ev_py, __file__, "evidently", ref, cur])
    ev = json.loads(out)
    names = {"Wasserstein distance (normed)": "wasserstein", "K-S p_value": "ks"}
    for c in kiln["columns"]:
        test, score, drifted = ev["columns"][c["name"]]
        assert names[test] == c["test"] and drifted == c["drifted"], (c["name"], c["test"], test)
        assert abs(score - c["score"]) <= 1e-9 * max(1.0, abs(score)), (c["name"], c["score"], score)
    drifted = sum(c["drifted"] for c in kiln["columns"])
    print(f"{args.rows:,} current rows x {COLUMNS} columns against {args.reference_rows:,} reference rows "
          f"(Parquet); {drifted} columns drifted, the same in both, scores equal to 1e-9")
    print(f"kiln drift:          {kiln_wall:7.2f} s  peak RSS {kiln_mb:7.1f} MB")
    print(f"Evidently 0.7.23:    {ev_wall:7.2f} s  peak RSS {ev_mb:7.1f} MB "
          f"(read {ev['read_s']:.2f} s, report {ev['report_s']:.2f} s)")
    print(f"speed-up {ev_wall / kiln_wall:.1f}x, memory {ev_mb / kiln_mb:.1f}x less")


if __name__ == "__main__":
    main()
