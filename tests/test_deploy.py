"""The operations recipes of `deploy/` and `.github/workflows/`, checked offline.

- `deploy/k8s/`: every manifest validates against Kubernetes' own OpenAPI schemas (`kubernetes-validate --strict`,
  schemas shipped with the package, no cluster); the serving objects fit together (selectors, ports, probes,
  ConfigMap keys, the image's user); the Deployment's command line serves a registered model from a real MLflow
  server and answers its probes, writing only where the pod has writable volumes; the tune Jobs' command lines run
  (the workers' with two trials, then the refit's).
- `deploy/prometheus/`: `promtool check rules` and `promtool test rules`; each alert is broken on purpose (never
  firing, always firing) and the unit tests must then fail, so none of them passes vacuously.
- `deploy/grafana/`: the dashboard is valid JSON whose PromQL expressions all parse (`promtool check rules` on a
  rules file made of them) and whose panels fit the grid.
- The metric and label names that the alerts and the dashboard use are ones kiln's source exports.
- `.github/workflows/`: actionlint (with shellcheck on the `run:` scripts).
- `deploy/systemd/`: `systemd-analyze verify`; `deploy/cron/`: every schedule field, and every command through
  `sh -n` and shellcheck.
- Every kiln command line in any recipe (crontab, systemd units, Kubernetes containers, workflow steps) is found
  and checked against `kiln <subcommand> --help`: the subcommand exists, each flag is one of its flags, a value is
  one of the allowed values, the required flags are there.

Each check also refuses a broken copy (a negative test). promtool comes from `make sysdeps` (Debian's prometheus
package), actionlint from tests/requirements.txt, shellcheck from `make sysdeps`.
"""

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO, VENV_BIN, free_port, kiln_bin, run_kiln

K8S = REPO / "deploy/k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
PROMETHEUS = REPO / "deploy/prometheus"
ALERTS = PROMETHEUS / "kiln-alerts.yml"
ALERT_TESTS = PROMETHEUS / "kiln-alerts.test.yml"
DASHBOARD = REPO / "deploy/grafana/kiln-dashboard.json"
SYSTEMD = REPO / "deploy/systemd"
CRONTAB = REPO / "deploy/cron/kiln.crontab"
WORKFLOWS = REPO / ".github/workflows"


def tool(name):
    """A checker on PATH or in the venv; missing is a failure that says where it comes from."""
    path = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)
    where = {"promtool": "`make sysdeps` (Debian's prometheus package)", "shellcheck": "`make sysdeps`",
             "actionlint": "tests/requirements.txt (`make venv`)"}
    assert path, f"{name} not found: it comes from {where.get(name, '?')}"
    return path


def load_all(paths):
    """Every object of the YAML files, with the file it came from."""
    out = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


def objects(kind):
    return {doc["metadata"]["name"]: doc for _, doc in load_all(MANIFESTS) if doc["kind"] == kind}


def pod_spec(doc):
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


# ------------------------------------------------------------------------------------------- Kubernetes manifests


def validate(*paths):
    return subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, paths)],
                          capture_output=True, text=True)


def test_every_manifest_validates_against_the_kubernetes_schemas():
    kinds = {doc["kind"] for _, doc in load_all(MANIFESTS)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "CronJob", "ConfigMap",
            "Job"} <= kinds, kinds
    proc = validate(*MANIFESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validator_refuses_a_broken_job(tmp_path):
    job = yaml.safe_load((K8S / "tune-workers.yaml").read_text())
    job["spec"]["parallelism"] = "four"
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = ["tune"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(job))
    assert validate(broken).returncode != 0


# One mistake per manifest that a YAML parser accepts and Kubernetes would not (or would silently ignore: a
# misspelt field is dropped by a lenient client, which --strict refuses).
def _typo_in_spec(doc):
    doc["spec"]["replica"] = 2


def _hpa_v1_field(doc):
    doc["spec"]["targetCPUUtilizationPercentage"] = 70   # autoscaling/v1's, not in v2


def _cronjob_bad_policy(doc):
    doc["spec"]["concurrencyPolicy"] = 7


def _container_typo(doc):
    pod_spec(doc)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}


BREAKERS = {"Deployment": _container_typo, "Service": _typo_in_spec, "HorizontalPodAutoscaler": _hpa_v1_field,
            "PodDisruptionBudget": _typo_in_spec, "CronJob": _cronjob_bad_policy, "Job": _container_typo,
            "ConfigMap": lambda doc: doc.update(data={"model": 42})}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_validator_refuses_a_broken_copy_of_each_manifest(path, tmp_path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        BREAKERS[doc["kind"]](doc)
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump_all(docs))
    proc = validate(broken)
    assert proc.returncode != 0, f"the broken copy of {path.name} validated:\n{broken.read_text()}"


def workspace_version():
    text = (REPO / "Cargo.toml").read_text()
    return re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S).group(1)


def image_user_id():
    return int(re.search(r"useradd[^\n]*--uid (\d+)", (REPO / "docker/kiln.Dockerfile").read_text()).group(1))


def all_containers():
    for path, doc in load_all(MANIFESTS):
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            for container in pod_spec(doc)["containers"]:
                yield path, doc, container


def test_every_container_runs_the_projects_image_at_the_workspace_version():
    images = {(path.name, c["image"]) for path, _, c in all_containers()}
    assert images and {image for _, image in images} == {f"ghcr.io/kiln-ml/kiln:{workspace_version()}"}, images
    # the image the workflows build and run
    image_wf = yaml.safe_load((WORKFLOWS / "image.yml").read_text())
    assert image_wf["env"]["IMAGE"] == "ghcr.io/kiln-ml/kiln"
    retrain_wf = yaml.safe_load((WORKFLOWS / "retrain.yml").read_text())
    assert retrain_wf["jobs"]["retrain"]["container"]["image"] == f"ghcr.io/kiln-ml/kiln:{workspace_version()}"


def test_the_new_pods_run_as_the_images_user_on_a_read_only_root_with_resources():
    """The serving and scheduled pods (the tune Jobs predate this): non-root as the image's user, read-only root
    filesystem with kiln's cache and /tmp on emptyDirs, no privilege escalation, requests and limits."""
    uid = image_user_id()
    checked = 0
    for path, doc, c in all_containers():
        if path.name.startswith("tune-"):
            continue
        checked += 1
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid, path
        assert pod.get("automountServiceAccountToken") is False, path
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, path
        assert sc["capabilities"]["drop"] == ["ALL"], path
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], path
        env = {e["name"]: e for e in c["env"]}
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        writable = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in empty_dirs and not m.get("readOnly")}
        assert env["KILN_CACHE_DIR"]["value"] in writable and "/tmp" in writable, (path, writable)
        # the registry's address and credentials come from the Secret, never from the manifest
        assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["name"] == "kiln-mlflow", path
        assert not any("value" in e for e in c["env"] if re.search("USERNAME|PASSWORD|TOKEN|API_KEYS", e["name"]))
    assert checked == 4, checked   # kiln serve, retrain, drift, evaluate


def test_the_serving_objects_fit_together():
    deployment = objects("Deployment")["kiln-serve"]
    service = objects("Service")["kiln-serve"]
    hpa = objects("HorizontalPodAutoscaler")["kiln-serve"]
    pdb = objects("PodDisruptionBudget")["kiln-serve"]
    config = objects("ConfigMap")["kiln-serve"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the selectors must not also pick the CronJobs' pods
    for name in ("kiln-retrain", "kiln-drift", "kiln-evaluate"):
        job_labels = objects("CronJob")[name]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= job_labels.items(), name
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kiln-serve"}
    assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["maxUnavailable"] == 1   # one pod always answers

    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    args = dict(a.split("=", 1) for a in container["args"][1:])
    assert int(args["--port"]) == ports["http"] and args["--host"] == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["http"] and annotations["prometheus.io/path"] == "/metrics"
    # probes on kiln serve's own endpoints: liveness and startup on /health, readiness on /ready
    serve_help = run_kiln("serve", "--help").stdout
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {k: p["path"] for k, p in probes.items()} == {"startupProbe": "/health", "livenessProbe": "/health",
                                                        "readinessProbe": "/ready"}
    for probe in probes.values():
        assert probe["port"] in ports and probe["path"] in serve_help, probe
    # every ConfigMap key the container reads exists
    for e in container["env"]:
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["name"] == "kiln-serve" and ref["key"] in config["data"], ref
    # the grace period covers the preStop wait plus kiln's longest request (--request-timeout-ms, 30 s default)
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= pre_stop + 30


@pytest.mark.parametrize("name", ["kiln-retrain", "kiln-drift", "kiln-evaluate"])
def test_the_cronjobs_never_overlap_and_fail_fast_on_an_answer(name):
    cron = objects("CronJob")[name]
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert check_cron_schedule(spec["schedule"]) == []
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1 and job["template"]["spec"]["restartPolicy"] == "Never"
    fail_at_once = {code for rule in job["podFailurePolicy"]["rules"] if rule["action"] == "FailJob"
                    for code in rule["onExitCodes"]["values"]}
    # 2 (invalid input) is never worth a retry; 4 is drift/evaluate's answer "drift found" / "degraded"
    assert 2 in fail_at_once
    assert (4 in fail_at_once) == (name != "kiln-retrain"), fail_at_once


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


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def test_the_deployment_serves_a_registered_model_and_answers_its_probes(mlflow_server, tmp_path):
    """The Deployment's container as the kubelet would run it, on this machine: its args with the ConfigMap's and
    the Secret's values substituted (the Secret's URI is a real MLflow server holding models:/eurusd@production),
    its environment, an empty home and working directory standing for the read-only root filesystem, and writable
    folders where the pod has emptyDirs. The startup, readiness and liveness probes must answer 200, /metrics must
    name the served version, and nothing may be written outside the writable volumes."""
    deployment = objects("Deployment")["kiln-serve"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["kiln"]
    config = objects("ConfigMap")["kiln-serve"]["data"]
    secret = {"uri": mlflow_server.url}
    dirs = {name: tmp_path / name for name in ("home", "cwd", "cache", "tmp")}
    for d in dirs.values():
        d.mkdir()
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
    cache = next(e["value"] for e in container["env"] if e["name"] == "KILN_CACHE_DIR")
    assert {cache, "/tmp"} <= writable, writable
    remap = {"/tmp": dirs["tmp"], cache: dirs["cache"]}

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KILN_"))}
    env.update(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]))
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = str(remap.get(e["value"], e["value"]))
        elif "configMapKeyRef" in e["valueFrom"]:
            env[e["name"]] = config[e["valueFrom"]["configMapKeyRef"]["key"]]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            if ref["key"] in secret:
                env[e["name"]] = secret[ref["key"]]
            else:
                assert ref.get("optional"), ref
    assert env["KILN_CACHE_DIR"] == str(dirs["cache"])
    port = free_port()
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    args = ["--host=127.0.0.1" if a.startswith("--host=") else f"--port={port}" if a.startswith("--port=") else a
            for a in args]
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([kiln_bin(), *args], env=env, cwd=dirs["cwd"], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            if http_get(base + container["startupProbe"]["httpGet"]["path"])[0] == 200:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the startup probe never answered 200:\n" + (tmp_path / "serve.log").read_text())
        for probe in ("livenessProbe", "readinessProbe"):
            status, body = http_get(base + container[probe]["httpGet"]["path"])
            assert status == 200, (probe, status, body)
        scrape_path = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        status, metrics = http_get(base + scrape_path)
        assert status == 200 and re.search(r'kiln_model_info\{name="eurusd",version="1",alias="production"', metrics)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    assert any(dirs["cache"].rglob("*")), "the bundle was not cached in KILN_CACHE_DIR"
    for name in ("home", "cwd"):
        assert not any(dirs[name].iterdir()), f"kiln serve wrote to {name}: {list(dirs[name].rglob('*'))}"


# --------------------------------------------------------------------------------------------------- crontab

CRON_NAMES = [
    {}, {},  {},
    {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
]
CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_FIELD_NAMES = ["minute", "hour", "day of month", "month", "day of week"]
CRON_SPECIALS = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def check_cron_schedule(schedule):
    """What is wrong with a cron schedule (five fields, or an @ word) as cron(8) and Kubernetes read it."""
    if schedule.startswith("@"):
        return [] if schedule in CRON_SPECIALS else [f"unknown {schedule}"]
    fields = schedule.split()
    if len(fields) != 5:
        return [f"{schedule!r}: {len(fields)} fields, not 5"]
    errors = []
    for field, names, (lo, hi), what in zip(fields, CRON_NAMES, CRON_RANGES, CRON_FIELD_NAMES):
        for part in field.split(","):
            m = re.fullmatch(r"(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?", part)
            if not m or m.group(4) == "0":
                errors.append(f"{what}: bad item {part!r}")
                continue
            values = []
            for v in (m.group(2), m.group(3)):
                if v is None:
                    continue
                n = names.get(v.lower()) if not v.isdigit() else int(v)
                if n is None or not lo <= n <= hi:
                    errors.append(f"{what}: {v!r} is not in {lo}-{hi}")
                values.append(n)
            if len(values) == 2 and None not in values and values[0] > values[1]:
                errors.append(f"{what}: range {part!r} goes backwards")
    return errors


def parse_crontab_line(line):
    """(schedule, command) of a crontab line; None for a blank line, a comment or a variable."""
    if not line.strip() or line.lstrip().startswith("#") or re.match(r"\s*[A-Za-z_]\w*\s*=", line):
        return None
    if line.startswith("@"):
        special, command = line.split(None, 1)
        return special, command
    parts = line.split(None, 5)
    return " ".join(parts[:5]), (parts[5] if len(parts) == 6 else "")


def check_crontab(text):
    errors = []
    for n, line in enumerate(text.splitlines(), 1):
        entry = parse_crontab_line(line)
        if entry is None:
            continue
        schedule, command = entry
        errors += [f"line {n}: {e}" for e in check_cron_schedule(schedule)]
        if not command:
            errors.append(f"line {n}: no command")
            continue
        # cron turns an unescaped % into a newline (the rest becomes the command's standard input)
        if re.search(r"(?<!\\)%", command):
            errors.append(f"line {n}: an unescaped % (cron reads it as a newline)")
        proc = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append(f"line {n}: sh -n: {proc.stderr.strip()}")
        # SC1091: the sourced environment file exists only on the target machine
        proc = subprocess.run([tool("shellcheck"), "-s", "sh", "-e", "SC1091", "-"], input=command,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append(f"line {n}: shellcheck:\n{proc.stdout}")
    return errors


def test_the_crontab_is_valid():
    text = CRONTAB.read_text()
    entries = [e for e in map(parse_crontab_line, text.splitlines()) if e]
    assert len(entries) == 3
    assert check_crontab(text) == []


@pytest.mark.parametrize("line,expected", [
    ("61 2 * * *  kiln retrain --config a.yaml", "minute: '61' is not in 0-59"),
    ("30 2 * * mon-sun  kiln drift", "range 'mon-sun' goes backwards"),   # sun is 0: cron wants mon-sat,sun or 1-7
    ("30 2 * *  kiln drift", "day of week: 'kiln' is not in 0-7"),   # a field missing: the command's first word
    ("*/0 * * * *  kiln drift", "bad item"),
    ("0 6 * * *  kiln drift --report reports/$(date +%F)", "unescaped %"),
    ("0 6 * * *  kiln drift --input 'data/recent.csv", "sh -n"),
    ("0 6 * * *  cd $DIR && kiln drift", "shellcheck"),
])
def test_the_crontab_check_refuses_broken_lines(line, expected):
    errors = check_crontab(line)
    assert any(expected in e for e in errors), errors


def test_cron_schedules_of_the_cronjobs_and_workflows_are_valid():
    schedules = [doc["spec"]["schedule"] for doc in objects("CronJob").values()]
    schedules += [s["cron"] for s in yaml.safe_load((WORKFLOWS / "retrain.yml").read_text())[True]["schedule"]]
    assert len(schedules) == 4
    for schedule in schedules:
        assert check_cron_schedule(schedule) == [], schedule


# ------------------------------------------------------------------------------ kiln command lines in the recipes

# Subcommands that issue 15 adds: the recipes use them, so their checks fail against a kiln built before they were
# merged, and say so.
ISSUE_15 = {"drift", "evaluate", "retrain"}
SHELL_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
SHELL_OPENERS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "exec"}
SHELL_CLOSERS = {"fi", "done", "}", "esac"}
REDIRECTIONS = {">", ">>", "<", "<<", ">&", "<&", "&>", "&>>", ">|"}


def shell_kiln_commands(script):
    """The argument lists of every `kiln ...` simple command in a shell script (one command per line, `\\`
    continuations joined; GitHub's ${{ }} expressions stand as one word), without redirections."""
    script = re.sub(r"\$\{\{.*?\}\}", "GHA_EXPR", script).replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        segment = []
        for token in [*lexer, ";"]:
            if token in SHELL_SEPARATORS or token in SHELL_CLOSERS:
                words = [w for w in segment if not re.fullmatch(r"[A-Za-z_]\w*=.*", w)] if segment else []
                if words and Path(words[0]).name == "kiln":
                    args = []
                    for i, w in enumerate(words[1:], 1):
                        if w in REDIRECTIONS or (w.isdigit() and i + 1 < len(words) and words[i + 1] in REDIRECTIONS):
                            break
                        args.append(w)
                    found.append(args)
                segment = []
            elif not segment and token in SHELL_OPENERS:
                continue
            else:
                segment.append(token)
    return found


def recipe_commands():
    """(where, args) of every kiln command line in deploy/ and .github/workflows/."""
    out = []
    for n, line in enumerate(CRONTAB.read_text().splitlines(), 1):
        entry = parse_crontab_line(line)
        if entry:
            out += [(f"cron/{CRONTAB.name}:{n}", args) for args in shell_kiln_commands(entry[1])]
    for unit in sorted(SYSTEMD.glob("*.service")):
        for n, line in enumerate(unit.read_text().splitlines(), 1):
            m = re.match(r"ExecStart(?:Pre|Post)?=[-@:+!]*(.*)", line)
            if m:
                argv = shlex.split(m.group(1))
                if Path(argv[0]).name == "kiln":
                    out.append((f"systemd/{unit.name}:{n}", argv[1:]))
    for path, doc, container in all_containers():
        entrypoint = container.get("command", ["kiln"])   # the image's ENTRYPOINT is kiln
        if Path(entrypoint[0]).name == "kiln":
            out.append((f"k8s/{path.name}:{doc['metadata']['name']}", entrypoint[1:] + container.get("args", [])))
    # the canary that serve-deployment.yaml's comment shows in place of --model
    canary = re.findall(r"^#\s+- (--\S+)$", (K8S / "serve-deployment.yaml").read_text(), re.M)
    out.append(("k8s/serve-deployment.yaml:canary (comment)", ["serve", *canary]))
    for wf in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in yaml.safe_load(wf.read_text())["jobs"].items():
            for i, step in enumerate(job["steps"]):
                for args in shell_kiln_commands(step.get("run", "")):
                    out.append((f"workflows/{wf.name}:{job_name}:step{i + 1}", args))
    return out


RECIPE_COMMANDS = recipe_commands()


def test_every_recipe_command_line_is_found():
    """The parser above finds what the recipes run (a command it missed would never be checked)."""
    found = {}
    for where, args in RECIPE_COMMANDS:
        found.setdefault(where.split(":")[0], []).append(args[0])
    assert found == {
        "cron/kiln.crontab": ["retrain", "drift", "evaluate"],
        "systemd/kiln-drift.service": ["drift"],
        "systemd/kiln-evaluate.service": ["evaluate"],
        "systemd/kiln-retrain.service": ["retrain"],
        "systemd/kiln-serve.service": ["serve"],
        "k8s/drift-cronjob.yaml": ["drift"],
        "k8s/evaluate-cronjob.yaml": ["evaluate"],
        "k8s/retrain-cronjob.yaml": ["retrain"],
        "k8s/serve-deployment.yaml": ["serve", "serve"],
        "k8s/tune-refit.yaml": ["tune"],
        "k8s/tune-workers.yaml": ["tune"],
        "workflows/retrain.yml": ["fetch", "retrain", "retrain"],
    }, found


# What a scheduled command may answer when it works: drift and evaluate say "drift found" / "degraded" with 4.
EXPECTED_STATUS = {"drift": {0, 4}, "evaluate": {0, 4}, "retrain": {0}}
SCHEDULED = [(w, a) for w, a in RECIPE_COMMANDS if a[0] in EXPECTED_STATUS and not w.startswith("workflows/")]


@pytest.fixture(scope="module")
def scheduled_store(tmp_path_factory):
    """A store with models:/eurusd@production, trained by `kiln train --register`."""
    store = tmp_path_factory.mktemp("scheduled") / "mlruns"
    run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", store)
    return store


def host_layout(tmp_path, store):
    """The working directory the recipes assume (/var/lib/kiln on a host, /work in a pod) in tmp_path: conf/ (the
    repository's, as in the image's /app/conf), data/ with the experiment's file and recent.csv (its newest 120
    rows), and a copy of the store."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    shutil.copytree(REPO / "conf", work / "conf")
    ecb = REPO / "data/ecb_eurofxref-hist.csv"
    shutil.copy(ecb, work / "data")
    (work / "data/recent.csv").write_text("".join(ecb.read_text().splitlines(keepends=True)[:121]))  # newest first
    mlruns = tmp_path / "mlruns"
    shutil.copytree(store, mlruns)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KILN_"))}
    env.update(MLFLOW_TRACKING_URI=str(mlruns), KILN_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path))
    return work, env


@pytest.mark.parametrize("where,args", SCHEDULED, ids=[w for w, _ in SCHEDULED])
def test_the_scheduled_command_lines_run(where, args, scheduled_store, tmp_path):
    """Each scheduled kiln command of the units and CronJobs, run as written in their working directory against a
    store holding the model it names: it must finish with a status that means the check worked."""
    work, env = host_layout(tmp_path, scheduled_store)
    args = [a.replace("/app/conf/", "conf/") for a in args]
    proc = subprocess.run([kiln_bin(), *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode in EXPECTED_STATUS[args[0]], \
        f"{where}: kiln {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


CRONTAB_LINES = [(n, parse_crontab_line(line)[1]) for n, line in enumerate(CRONTAB.read_text().splitlines(), 1)
                 if parse_crontab_line(line)]


@pytest.mark.parametrize("n,command", CRONTAB_LINES, ids=[f"line{n}" for n, _ in CRONTAB_LINES])
def test_the_crontab_lines_run(n, command, scheduled_store, tmp_path):
    """A crontab command through sh as cron runs it, the host's paths moved into tmp_path: kiln's output goes to
    its log, and the one line cron would mail appears only for a non-zero status, naming it."""
    work, env = host_layout(tmp_path, scheduled_store)
    (tmp_path / "kiln.env").write_text(f"MLFLOW_TRACKING_URI={env.pop('MLFLOW_TRACKING_URI')}\n")
    logs = tmp_path / "log"
    logs.mkdir()
    env["PATH"] = f"{Path(kiln_bin()).parent}:/usr/bin:/bin"
    command = command.replace("/var/lib/kiln", str(work)).replace("/etc/kiln/kiln.env", str(tmp_path / "kiln.env"))
    command = command.replace("/var/log/kiln", str(logs))
    subcommand = shell_kiln_commands(command)[0][0]
    proc = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=900)
    log = (logs / f"{subcommand}.log").read_text()
    assert proc.returncode == 0 and log.strip(), (proc.stdout, proc.stderr)
    mailed = re.fullmatch(rf"kiln {subcommand} exited (\d+) .*\n", proc.stdout) if proc.stdout else None
    assert proc.stdout == "" or mailed, proc.stdout
    status = int(mailed.group(1)) if mailed else 0
    assert status in EXPECTED_STATUS[subcommand], f"line {n}: kiln {subcommand} exited {status}:\n{log}"


@functools.lru_cache(maxsize=None)
def kiln_help(*chain):
    """`kiln <chain> --help`, parsed: its subcommands, its flags ({name: (takes_value, allowed values)}, short
    flags as -x) and the flags its usage line requires; None when kiln has no such subcommand."""
    proc = subprocess.run([kiln_bin(), *chain, "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    text = proc.stdout
    commands = set(re.findall(r"^  ([a-z][a-z-]*)  ", text.split("Commands:", 1)[1].split("\n\n", 1)[0], re.M)) \
        if "\nCommands:" in text else set()
    flags, shorts = {}, {}
    options = text.split("\nOptions:\n", 1)[1] if "\nOptions:\n" in text else ""
    entries = re.split(r"\n(?=\s{2,6}(?:-\w, )?--[\w-])", "\n" + options)
    for entry in entries:
        m = re.match(r"\s*(?:-(\w), )?--([\w-]+)(?: <[^>]+>| \[<[^>]+>\])?", entry.strip("\n"))
        if not m:
            continue
        takes_value = bool(re.match(r"\s*(?:-\w, )?--[\w-]+ <", entry.strip("\n")))
        allowed = re.search(r"\[possible values: ([^\]]+)\]", " ".join(entry.split()))
        flags["--" + m.group(2)] = (takes_value, {v.strip() for v in allowed.group(1).split(",")} if allowed else None)
        if m.group(1):
            shorts["-" + m.group(1)] = "--" + m.group(2)
    usage = re.search(r"^Usage: (.*)$", text, re.M).group(1)
    usage = re.sub(r"\[[^\]]*\]", "", usage)
    # a required group of alternatives, as clap writes it: `<--model <REF>|--reference <FILE>>`
    groups = [frozenset(re.findall(r"(--[\w-]+)", g))
              for g in re.findall(r"<(--[\w-]+ <[^>]+>(?:\|--[\w-]+ <[^>]+>)+)>", usage)]
    usage = re.sub(r"<--[\w-]+ <[^>]+>(?:\|--[\w-]+ <[^>]+>)+>", "", usage)
    required = [frozenset([f]) for f in sorted(set(re.findall(r"(--[\w-]+)", usage)))] + groups
    return {"commands": commands, "flags": flags, "shorts": shorts, "required": required,
            "needs_command": "<COMMAND>" in usage}


def check_kiln_command(args):
    """What is wrong with `kiln ARGS` according to kiln's own --help ([] when nothing)."""
    chain = []
    rest = list(args)
    top = kiln_help()
    while rest and not rest[0].startswith("-"):
        here = kiln_help(*chain)
        if here and rest[0] in here["commands"]:
            chain.append(rest.pop(0))
        else:
            break
    if not chain:
        name = rest[0] if rest else ""
        hint = " (issue 15 adds it: this kiln binary predates the merge)" if name in ISSUE_15 else ""
        return [f"kiln has no subcommand `{name}`{hint}; it has {sorted(top['commands'])}"]
    info = kiln_help(*chain)
    if info["needs_command"]:
        return [f"`kiln {' '.join(chain)}` needs a subcommand, one of {sorted(info['commands'])}"]
    errors, seen = [], set()
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if not word.startswith("-") or word == "-":
            continue
        flag, eq, value = word.partition("=")
        flag = info["shorts"].get(flag, flag)
        if flag not in info["flags"]:
            errors.append(f"`kiln {' '.join(chain)}` has no flag {flag}")
            continue
        seen.add(flag)
        takes_value, allowed = info["flags"][flag]
        if takes_value and not eq:
            if i >= len(rest):
                errors.append(f"{flag} needs a value")
                continue
            value = rest[i]
            i += 1
        elif not takes_value and eq:
            errors.append(f"{flag} takes no value, got {value!r}")
        if allowed and takes_value and "$" not in value and "GHA_EXPR" not in value and value not in allowed:
            errors.append(f"{flag} {value!r} is not one of {sorted(allowed)}")
    missing = [sorted(alternatives) for alternatives in info["required"] if not alternatives & seen]
    for alternatives in missing:
        what = alternatives if len(alternatives) == 1 else " or ".join(alternatives)
        errors.append(f"`kiln {' '.join(chain)}` requires {what}")
    return errors


@pytest.mark.parametrize("where,args", RECIPE_COMMANDS, ids=[w for w, _ in RECIPE_COMMANDS])
def test_every_kiln_command_line_in_the_recipes_is_one_kiln_accepts(where, args):
    errors = check_kiln_command(args)
    assert not errors, f"{where}: kiln {' '.join(args)}\n  " + "\n  ".join(errors)


@pytest.mark.parametrize("line,expected", [
    ("kiln serve --modle models:/x@production", "has no flag --modle"),
    ("kiln evaluate --input new.csv", "requires ['--model']"),
    ("kiln drift --input new.csv", "requires --model or --reference"),
    ("kiln serve -m models:/x@production --access-log xml", "'xml' is not one of ['json', 'off']"),
    ("kiln serve --model", "--model needs a value"),
    ("kiln nosuch --model x", "kiln has no subcommand `nosuch`"),
    ("kiln registry --tracking-uri x", "needs a subcommand"),
    ("kiln registry list --jsn", "`kiln registry list` has no flag --jsn"),
    ("cd /var/lib/kiln && kiln fetch --config a.yaml --bogus >>log 2>&1 || echo failed", "has no flag --bogus"),
])
def test_the_command_line_check_refuses_broken_lines(line, expected):
    commands = shell_kiln_commands(line)
    assert len(commands) == 1, commands
    errors = check_kiln_command(commands[0])
    assert any(expected in e for e in errors), errors


def test_the_command_line_check_accepts_good_lines():
    for line in ["kiln serve -m models:/x@production --access-log=off --port 0",
                 "kiln registry promote eurusd 3 --alias production",
                 "X=1 kiln fetch --config \"$CONFIG\" | tee out.txt"]:
        assert check_kiln_command(shell_kiln_commands(line)[0]) == [], line


def test_the_retrain_workflow_offers_only_the_whens_kiln_retrain_accepts():
    """retrain.yml's `when` input is a choice; each option must be a value of `kiln retrain --when` (issue 15)."""
    inputs = yaml.safe_load((WORKFLOWS / "retrain.yml").read_text())[True]["workflow_dispatch"]["inputs"]
    info = kiln_help("retrain")
    assert info, "kiln has no subcommand `retrain` (issue 15 adds it: this kiln binary predates the merge)"
    assert set(inputs["when"]["options"]) == info["flags"]["--when"][1], info["flags"]["--when"]


# ----------------------------------------------------------------------------------------------- systemd units


def systemd_copy(tmp_path):
    """The units in a folder, with ExecStart's /usr/local/bin/kiln pointing at the kiln under test (systemd-analyze
    verify checks that the program exists)."""
    out = tmp_path / "units"
    out.mkdir()
    for unit in list(SYSTEMD.glob("*.service")) + list(SYSTEMD.glob("*.timer")):
        (out / unit.name).write_text(unit.read_text().replace("/usr/local/bin/kiln", kiln_bin()))
    return out


def systemd_verify(folder):
    units = sorted(p.name for p in folder.iterdir())
    proc = subprocess.run(["systemd-analyze", "verify", *units], cwd=folder, capture_output=True, text=True)
    # verify exits 0 on some mistakes it only warns about ("Unknown key name", "Failed to parse ..., ignoring"),
    # so any output is a failure too
    return proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def test_every_timer_starts_a_oneshot_service_of_its_name():
    """Parsed without systemd (the part of the check that needs no systemd-analyze)."""
    import configparser

    timers = sorted(SYSTEMD.glob("*.timer"))
    assert {t.stem for t in timers} == {"kiln-retrain", "kiln-drift", "kiln-evaluate"}
    for timer in timers:
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str
        unit.read(timer)
        assert unit["Timer"]["OnCalendar"] and unit["Install"]["WantedBy"] == "timers.target"
        service = configparser.ConfigParser(strict=False, interpolation=None)
        service.optionxform = str
        service.read(timer.with_suffix(".service"))
        assert service["Service"]["Type"] == "oneshot", timer
        assert service["Service"]["ExecStart"].startswith("/usr/local/bin/kiln "), timer
    weekly = [t.stem for t in timers if "Mon" in t.read_text().split("OnCalendar=")[1].split("\n")[0]]
    assert weekly == ["kiln-evaluate"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="systemd-analyze is not installed: the units are only parsed "
                           "(test_every_timer_starts_a_oneshot_service_of_its_name)")
def test_systemd_analyze_verifies_the_units(tmp_path):
    ok, output = systemd_verify(systemd_copy(tmp_path))
    assert ok, output


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit,old,new", [
    ("kiln-drift.service", "ProtectSystem=strict", "ProtectSystem=strictly"),
    ("kiln-drift.service", "Type=oneshot", "Typ=oneshot"),
    ("kiln-retrain.timer", "OnCalendar=*-*-* 02:30:00 UTC", "OnCalendar=*-*-* 25:30:00 UTC"),
    ("kiln-serve.service", "ExecStart=", "ExecStart=relative/"),
])
def test_systemd_analyze_refuses_broken_units(tmp_path, unit, old, new):
    folder = systemd_copy(tmp_path)
    text = (folder / unit).read_text()
    assert old in text
    (folder / unit).write_text(text.replace(old, new, 1))
    ok, output = systemd_verify(folder)
    assert not ok, f"the broken {unit} was verified"


# ------------------------------------------------------------------------------------- Prometheus alert rules


def promtool(*args, cwd=None):
    return subprocess.run([tool("promtool"), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def alert_rules():
    return {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_alert_rules():
    assert set(alert_rules()) == {"KilnFeatureDrift", "KilnHighErrorRate", "KilnHighLatencyP99",
                                  "KilnModelReloadFailed"}
    proc = promtool("check", "rules", ALERTS)
    assert proc.returncode == 0 and "SUCCESS: 4 rules found" in proc.stdout, proc.stdout + proc.stderr


def test_promtool_refuses_broken_rules(tmp_path):
    rules = yaml.safe_load(ALERTS.read_text())
    rules["groups"][1]["rules"][0]["expr"] = "sum(rate(kiln_http_requests_total)) > 0.05"   # rate of an instant
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(rules))
    assert promtool("check", "rules", broken).returncode != 0


def test_the_alert_rules_pass_their_unit_tests():
    proc = promtool("test", "rules", ALERT_TESTS)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not():
    cases = [c for t in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in alert_rules():
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert} never expected to fire"
        assert any(not c["exp_alerts"] for c in mine), f"{alert} never expected to stay silent"


@pytest.mark.parametrize("alert", ["KilnFeatureDrift", "KilnHighErrorRate", "KilnHighLatencyP99",
                                   "KilnModelReloadFailed"])
@pytest.mark.parametrize("mutant", ["vector(1) < 0", "vector(1)"], ids=["never-fires", "always-fires"])
def test_the_unit_tests_fail_when_an_alert_is_broken(tmp_path, alert, mutant):
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = mutant
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(rules))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    proc = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


# ------------------------------------------------------------------------------------------- Grafana dashboard

GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
# what a template variable stands for when an expression is checked: a regex matching anything, as "All" does
TEMPLATE_VALUE = ".+"


def dashboard_panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard):
    """(panel, target, expr with the variables replaced) of every query; an unknown variable raises."""
    defined = {v["name"] for v in dashboard["templating"]["list"]}

    def value(m):
        name = m.group(1) or m.group(2)
        if name in GRAFANA_VARIABLES:
            return GRAFANA_VARIABLES[name]
        assert name in defined, f"${name} is not a variable of the dashboard"
        return TEMPLATE_VALUE

    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target, re.sub(r"\$\{(\w+)\}|\$(\w+)", value, target["expr"])


def load_dashboard(path=DASHBOARD):
    return json.loads(path.read_text())


def test_the_dashboard_is_a_grafana_dashboard_whose_panels_fit_the_grid():
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = list(dashboard_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    taken = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = p["title"]
        if p["type"] != "row":
            assert p["targets"] and p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p.get("description"), p["title"]
    datasource = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert datasource and datasource[0]["type"] == "datasource" and datasource[0]["query"] == "prometheus"
    # the panels cover what an operator looks at
    text = json.dumps(dashboard)
    for metric in ["kiln_http_requests_total", "kiln_http_request_duration_seconds_bucket", "kiln_feature_drift_psi",
                   "kiln_variant_requests_total", "kiln_model_info", "kiln_model_age_seconds",
                   "kiln_model_reloads_total"]:
        assert metric in text, metric


def test_every_legend_names_labels_its_query_keeps():
    for panel, target, expr in dashboard_queries(load_dashboard()):
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        kept = set()
        for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            kept |= {label.strip() for label in clause.split(",") if label.strip()}
        if kept and legend:
            assert legend <= kept | {"le"}, (panel["title"], legend, kept)


def dashboard_rules_file(dashboard, path):
    rules = [{"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr}
             for panel, target, expr in dashboard_queries(dashboard)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "kiln-dashboard", "rules": rules}]}))
    return len(rules)


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """Each panel's expression, its variables replaced, becomes a recording rule; `promtool check rules` parses
    them all with Prometheus' own parser."""
    n = dashboard_rules_file(load_dashboard(), tmp_path / "dashboard-rules.yml")
    assert n >= 25
    proc = promtool("check", "rules", tmp_path / "dashboard-rules.yml")
    assert proc.returncode == 0 and f"SUCCESS: {n} rules found" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("breakage", ["paren", "range", "variable"])
def test_a_dashboard_with_a_broken_query_is_refused(tmp_path, breakage):
    dashboard = load_dashboard()
    target = next(p for p in dashboard_panels(dashboard) if "targets" in p)["targets"][0]
    if breakage == "paren":
        target["expr"] = target["expr"].rstrip(")")
    elif breakage == "range":
        target["expr"] = target["expr"].replace("[$__rate_interval]", "")   # rate() of an instant vector
    else:
        target["expr"] = target["expr"].replace("$job", "$jobs")
    try:
        dashboard_rules_file(dashboard, tmp_path / "rules.yml")
    except AssertionError as e:
        assert breakage == "variable" and "$jobs is not a variable" in str(e)
        return
    assert breakage != "variable"
    assert promtool("check", "rules", tmp_path / "rules.yml").returncode != 0


# ------------------------------------------------------------------------- metric names: used == exported by kiln

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan", "atan2",
}
RESERVED_LABELS = {"job", "instance", "le", "__name__"}


def promql_names(expr):
    """(metric names, label names) an expression uses."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", "".join(re.findall(r"\{[^}]*\}", no_strings))))
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", no_strings):
        labels |= {label.strip() for label in clause.split(",") if label.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", no_strings)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    words = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", bare)
    return {w for w in words if w not in PROMQL_WORDS}, labels


def used_names():
    """{metric or label name: where it is used} over the alert rules and the dashboard."""
    metrics, labels = {}, {}
    exprs = [(f"alert {name}", rule["expr"]) for name, rule in alert_rules().items()]
    dashboard = load_dashboard()
    exprs += [(f"panel {p['title']!r}", expr) for p, _, expr in dashboard_queries(dashboard)]
    exprs += [(f"variable {v['name']}", re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["definition"])
               .replace("$job", ".+")) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for where, expr in exprs:
        m, l = promql_names(expr)
        for name in m:
            metrics.setdefault(name, []).append(where)
        for name in l - RESERVED_LABELS:
            labels.setdefault(name, []).append(where)
    return metrics, labels


USED_METRICS, USED_LABELS = used_names()


@functools.lru_cache(maxsize=None)
def kiln_source():
    return "\n".join(p.read_text() for p in sorted((REPO / "crates").glob("*/src/**/*.rs")))


def kiln_exports(metric):
    names = set(re.findall(r'"(kiln_[a-z0-9_]+)', kiln_source()))
    base = re.sub(r"_(bucket|sum|count)$", "", metric)
    return metric in names or base in names


def test_promql_names_finds_metrics_and_labels():
    metrics, labels = promql_names(
        'sum by (route) (rate(kiln_http_requests_totl{status=~"5..", job="a b"}[5m])) / on (job) group_left '
        'max(up) > bool 0.5 and histogram_quantile(0.99, kiln_x_bucket)')
    assert metrics == {"kiln_http_requests_totl", "up", "kiln_x_bucket"}, metrics
    assert labels == {"route", "status", "job"}, labels
    assert not kiln_exports("kiln_http_requests_totl") and not kiln_exports("up")
    assert kiln_exports("kiln_http_requests_total") and kiln_exports("kiln_http_request_duration_seconds_bucket")


@pytest.mark.parametrize("metric", sorted(USED_METRICS))
def test_every_metric_the_alerts_and_the_dashboard_use_is_one_kiln_exports(metric):
    assert kiln_exports(metric), (
        f"{metric} (used by {', '.join(sorted(set(USED_METRICS[metric])))}) is not in kiln's source "
        "(crates/*/src); the live-drift and variant metrics come with issue 15's kiln serve work")


@pytest.mark.parametrize("label", sorted(USED_LABELS))
def test_every_label_the_alerts_and_the_dashboard_use_is_one_kiln_writes(label):
    source = kiln_source()
    assert f'{label}=\\"' in source or f'"{label}"' in source, (
        f"kiln's source never writes the label {label} (used by {', '.join(sorted(set(USED_LABELS[label])))})")


# ------------------------------------------------------------------------------------ GitHub Actions workflows


def actionlint(*files, cwd=REPO):
    tool("shellcheck")   # without it on PATH actionlint silently skips the run: scripts
    return subprocess.run([tool("actionlint"), "-no-color", *map(str, files)], capture_output=True, text=True,
                          cwd=cwd)


def test_actionlint_passes_the_workflows():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["image.yml", "retrain.yml", "test.yml"]
    proc = actionlint(*files)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


@pytest.mark.parametrize("name,old,new", [
    ("retrain.yml", "${{ secrets.MLFLOW_TRACKING_URI }}", "${{ secret.MLFLOW_TRACKING_URI }}"),
    ("retrain.yml", "options: [always, degraded, drift]", "options: always"),
    ("test.yml", "runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"),
    ("image.yml", "if: startsWith(github.ref, 'refs/tags/v')", "if: startsWith(github.ref, 'refs/tags/v'"),
    ("retrain.yml", 'kiln fetch --config "$CONFIG"', "kiln fetch --config $CONFIG"),   # shellcheck SC2086
])
def test_actionlint_refuses_broken_workflows(tmp_path, name, old, new):
    text = (WORKFLOWS / name).read_text()
    assert old in text
    folder = tmp_path / ".github/workflows"
    folder.mkdir(parents=True)
    (folder / name).write_text(text.replace(old, new, 1))
    assert actionlint(folder / name, cwd=tmp_path).returncode != 0


def test_the_workflows_do_what_they_say():
    test_wf = yaml.safe_load((WORKFLOWS / "test.yml").read_text())
    assert any(step.get("run") == "make test" for step in test_wf["jobs"]["test"]["steps"])
    image_wf = yaml.safe_load((WORKFLOWS / "image.yml").read_text())
    build = next(s for s in image_wf["jobs"]["image"]["steps"] if s.get("uses", "").startswith("docker/build-push"))
    assert (REPO / build["with"]["file"]).exists()
    assert re.search(rf"^FROM .* AS {build['with']['target']}$", (REPO / build["with"]["file"]).read_text(), re.M)
    assert build["with"]["push"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"   # pushes on version tags only
    assert "v*" in image_wf[True]["push"]["tags"]
    retrain_wf = yaml.safe_load((WORKFLOWS / "retrain.yml").read_text())
    assert "schedule" in retrain_wf[True] and "workflow_dispatch" in retrain_wf[True]
    env = retrain_wf["jobs"]["retrain"]["env"]
    assert env["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert (REPO / retrain_wf[True]["workflow_dispatch"]["inputs"]["config"]["default"]).exists()
