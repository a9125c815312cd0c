"""Every shipped experiment trains to the same bundle as the build the hashes were recorded with.

`tests/bundle_hashes.json` holds, per experiment in `conf/experiments/`, the sha256 of every file of its bundle
(`artifacts/model/`), recorded with the build before issue 9's reshaping. A refactor that changes one fitted value,
one selected feature or one byte of the files fails here. Only what differs between two runs of the same build is
blanked before hashing: the run id, the creation time and the `model_uuid` derived from it (in `MLmodel`), and in
`kiln/metadata.json` the same two fields plus the sha256 it lists for `MLmodel`.

To record the hashes anew (only for a deliberate change of the bundle, explained in the commit):
`KILN_RECORD_BUNDLE_HASHES=1 .venv/bin/python -m pytest tests/test_bundles_unchanged.py`."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from conftest import REPO, run_kiln

HASHES = REPO / "tests/bundle_hashes.json"
# an experiment that trains on a `kiln fetch` snapshot (data.snapshot) has no shipped data to train on here: its
# bundle is checked end to end in tests/test_fetch.py, on the snapshot fetched from the recorded answers
EXPERIMENTS = sorted(p for p in (REPO / "conf/experiments").glob("*.yaml") if "\n  snapshot:" not in p.read_text())
RECORD = os.environ.get("KILN_RECORD_BUNDLE_HASHES") == "1"

VOLATILE = {
    "MLmodel": [
        (re.compile(rb"^(model_uuid|utc_time_created|run_id): .*$", re.M), rb"\1: <volatile>", 3),
    ],
    "kiln/metadata.json": [
        (re.compile(rb'"(created_ms)": -?\d+'), rb'"\1": 0', 1),
        (re.compile(rb'"(run_id)": "[^"]*"'), rb'"\1": "<volatile>"', 1),
        (re.compile(rb'"(MLmodel)": "[0-9a-f]{64}"'), rb'"\1": "<volatile>"', 1),
    ],
}


def bundle_hashes(model_dir: Path) -> dict:
    out = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir).as_posix()
        data = path.read_bytes()
        for pattern, replacement, count in VOLATILE.get(rel, []):
            data, n = pattern.subn(replacement, data)
            assert n == count, f"{rel}: expected {count} volatile fields matching {pattern.pattern!r}, found {n}"
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def train_bundle(config: Path, store: Path) -> Path:
    run_kiln("train", "--config", config, "--tracking-uri", store)
    runs = [p for p in store.glob("*/*/artifacts/model") if p.is_dir()]
    assert len(runs) == 1, f"expected one run with a model under {store}, found {runs}"
    return runs[0]


@pytest.mark.parametrize("config", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_bundle_is_unchanged(config, tmp_path):
    got = bundle_hashes(train_bundle(config, tmp_path / "mlruns"))
    recorded = json.loads(HASHES.read_text()) if HASHES.exists() else {}
    if RECORD:
        recorded[config.stem] = got
        HASHES.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        return
    assert config.stem in recorded, f"no recorded hashes for {config.stem}; record them (see the module doc)"
    assert got == recorded[config.stem], f"{config.stem}: the bundle changed"
