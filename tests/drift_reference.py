"""Evidently's data drift report on two files, as JSON kiln's test compares with (tests/test_drift.py).

Evidently 0.7.23 needs pandas < 3, so this runs with .venv-drift/bin/python (`make venv-drift`, pinned by
tests/requirements-drift.txt). It runs the legacy `DataDriftPreset` (the one with per-column `drift_by_columns`),
default options, on the columns given, after reading both files with pandas (a blank cell is missing, as kiln reads
it), and prints
{"columns": {name: {"column_type", "stattest_name", "drift_score", "drift_detected"}}, "share", "dataset_drift"}.

  .venv-drift/bin/python tests/drift_reference.py REFERENCE.csv CURRENT.csv COLUMN [COLUMN ...]
"""

import json
import sys
import warnings

import pandas as pd

warnings.filterwarnings("ignore")

from evidently.legacy.metric_preset import DataDriftPreset  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402


def main():
    ref_path, cur_path, *columns = sys.argv[1:]
    # a blank cell is missing, as kiln reads it (Telco's TotalCharges is " " for new customers)
    ref = pd.read_csv(ref_path, na_values=[" "])[columns]
    cur = pd.read_csv(cur_path, na_values=[" "])[columns]
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref, current_data=cur)
    result = report.as_dict()["metrics"][1]["result"]
    out = {
        "columns": {
            name: {k: v[k] for k in ("column_type", "stattest_name", "drift_score", "drift_detected")}
            for name, v in result["drift_by_columns"].items()
        },
        "share": result["share_of_drifted_columns"],
        "dataset_drift": result["dataset_drift"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
