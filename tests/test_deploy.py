"""The Kubernetes manifests of `deploy/k8s/`, checked offline: each validates against Kubernetes' own OpenAPI schemas
(`kubernetes-validate --strict`, schemas shipped with the package, no cluster), the ConfigMap's experiment is the
shipped one as `kiln config show` prints it, and the Jobs' command lines run: the workers' (with two trials) and then
the refit's (no new trial, the leaderboard of the stored ones, the winner refitted and registered)."""

import re
import subprocess
from pathlib import Path

import yaml

from conftest import REPO, VENV_BIN, run_kiln

K8S = REPO / "deploy/k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))


def validate(*paths):
    return subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, paths)],
                          capture_output=True, text=True)


def test_every_manifest_validates_against_the_kubernetes_schemas():
    assert len(MANIFESTS) >= 3
    proc = validate(*MANIFESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validator_refuses_a_broken_job(tmp_path):
    job = yaml.safe_load((K8S / "tune-workers.yaml").read_text())
    job["spec"]["parallelism"] = "four"
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = ["tune"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(job))
    assert validate(broken).returncode != 0


def test_the_config_map_holds_the_shipped_experiment():
    config_map = yaml.safe_load((K8S / "tune-config.yaml").read_text())
    shown = run_kiln("config", "show", "conf/experiments/eurusd_tune.yaml").stdout
    assert yaml.safe_load(config_map["data"]["experiment.yaml"]) == yaml.safe_load(shown)


def job_args(name):
    job = yaml.safe_load((K8S / name).read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kiln"]
    return container["args"]


def test_the_jobs_command_lines_run(tmp_path):
    help_text = run_kiln("tune", "--help").stdout
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_load((K8S / "tune-config.yaml").read_text())["data"]["experiment.yaml"])
    values = {"KILN_STUDY_STORAGE": f"sqlite:///{tmp_path / 'studies.db'}", "MLFLOW_TRACKING_URI": tmp_path / "mlruns"}

    def local(args, trials):
        out = []
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag.startswith("--"):
                assert flag in help_text, f"{flag} is not a kiln tune flag"
            arg = re.sub(r"\$\((\w+)\)", lambda m: str(values[m.group(1)]), arg)
            arg = arg.replace("/etc/kiln/experiment.yaml", str(experiment))
            if flag == "--n-trials" and trials is not None:
                arg = f"--n-trials={trials}"
            out.append(arg)
        return out

    workers = run_kiln(*local(job_args("tune-workers.yaml"), 2))
    assert "refitting" not in workers.stdout
    refit = run_kiln(*local(job_args("tune-refit.yaml"), None))
    assert "0 trials in this run" in refit.stdout, refit.stdout
    assert "refitting the winner" in refit.stdout and "registered eurusd version 1" in refit.stdout, refit.stdout
