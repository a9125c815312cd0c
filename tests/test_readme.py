"""The README is true: every `kiln` command it shows exists with the flags it shows, every file it names is in the
repository, the metric keys it names are what a run logs, `--version` names the version and the commit, and the
help reads well at 80 and 120 columns. The commands that need a trained model or a server run in the other tests
(test_eurusd_e2e.py runs the demo's train and predict); here they are checked against the binary's own help."""

import re
import subprocess

from conftest import REPO, kiln_bin, run_kiln

README = (REPO / "README.md").read_text()


def _code_lines():
    """Every line of the README's fenced `sh` blocks, with backslash continuations joined."""
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def _kiln_commands():
    """(subcommand words, flags) of every `kiln ...` invocation in the README's shell blocks."""
    out = []
    for line in _code_lines():
        for part in re.split(r"\s*(?:&&|;|\||&)\s*", line):
            words = part.split()
            if not words or words[0] != "kiln":
                continue
            sub = []
            for w in words[1:]:
                if w.startswith("-") or "/" in w or "." in w or "=" in w:
                    break
                sub.append(w)
            flags = [w.split("=")[0] for w in words if w.startswith("--")]
            out.append((tuple(sub), flags, part))
    return out


def test_every_kiln_command_in_the_readme_exists_with_its_flags():
    commands = _kiln_commands()
    assert len(commands) >= 5, commands
    helps = {}
    for sub, flags, line in commands:
        # the longest prefix of the words that is a real subcommand (the rest are positional arguments)
        for n in range(len(sub), -1, -1):
            key = sub[:n]
            if key not in helps:
                proc = subprocess.run([kiln_bin(), *key, "--help"], capture_output=True, text=True)
                helps[key] = proc.stdout if proc.returncode == 0 else None
            if helps[key] is not None and (n == 0 or "Usage: kiln " + " ".join(key) in helps[key]):
                break
        else:
            raise AssertionError(f"no such command: {line}")
        assert key or not sub or sub[0] in ("--version",), f"'{line}': unknown subcommand {sub}"
        for flag in flags:
            assert flag in helps[key] or flag in ("--help", "--version"), f"'{line}': {flag} is not a flag of kiln {' '.join(key)}"


def test_every_repository_file_the_readme_names_exists():
    named = set(re.findall(r"\b((?:conf|data|tests|scripts|crates|docker)/[\w./-]+\.(?:ya?ml|csv|py|sh|md|rs|toml))", README))
    named |= {f"conf/experiments/{n}" for n in re.findall(r"`(\w+\.yaml)`", README)
              if (REPO / "conf/experiments" / n).exists() or n.startswith(("eurusd", "churn", "etth1"))}
    assert len(named) >= 15, named
    missing = sorted(n for n in named if not (REPO / n).exists())
    assert not missing, missing


def test_the_metric_keys_the_readme_names_are_logged(eurusd_store):
    # the EUR/USD run (the shared server's store also holds runs other tests train into it)
    store = eurusd_store["store"]
    run = next(p.parent for p in store.glob("*/*/tags/mlflow.runName") if p.read_text() == "eurusd-lightgbm").parent
    root = run / "metrics"
    logged = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    section = README.split("## What a run records")[1].split("\n## ")[0]
    concrete = set(re.findall(r"`((?:test|train|baseline|rows|model|train_curve)/[a-z0-9_/]+)`", section))
    assert "train_curve/valid/l2" in concrete
    assert concrete <= logged, concrete - logged
    for prefix in ["test/", "train/", "baseline/test/", "baseline/train/", "rows/", "model/", "train_curve/valid/"]:
        assert any(k.startswith(prefix) for k in logged), prefix
    # nothing is logged outside the groups the README names
    groups = {"test", "train", "baseline", "rows", "model", "train_curve", "registry"}
    assert all(k.split("/")[0] in groups for k in logged), logged
    # registration's comparison with the alias's holder (logged with --register; tests/test_watch.py checks them)
    assert "`registry/new_<metric>`" in section and "`registry/holder_<metric>`" in section


def test_version_names_the_version_and_the_commit():
    out = run_kiln("--version").stdout.strip()
    version = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), flags=re.M).group(1)
    assert version != "0.0.0"
    m = re.fullmatch(r"kiln (\S+) \(commit ([0-9a-f]{12}(\+dirty)?|unknown)\)", out)
    assert m and m.group(1) == version, out
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0 and m.group(2) != "unknown":
        # built from this checkout, or an earlier commit of it (a warm target dir): a real commit either way
        known = subprocess.run(["git", "cat-file", "-t", m.group(2).removesuffix("+dirty")], cwd=REPO,
                               capture_output=True, text=True)
        assert known.stdout.strip() == "commit", out


def test_help_reads_well_at_80_and_120_columns():
    subcommands = [(), ("train",), ("predict",), ("serve",), ("registry",), ("registry", "promote"), ("sync",),
                   ("fetch",), ("fetch", "yahoo"), ("fetch", "bigquery"), ("fetch", "file"), ("data", "list"),
                   ("config", "show")]
    for width in (80, 120):
        for sub in subcommands:
            proc = subprocess.run([kiln_bin(), *sub, "--help"], capture_output=True, text=True,
                                  env={"COLUMNS": str(width), "PATH": "/usr/bin:/bin"})
            assert proc.returncode == 0, proc.stderr
            lines = proc.stdout.splitlines()
            too_long = [line for line in lines if len(line) > width]
            assert not too_long, (width, sub, too_long)
            # a wrapped paragraph never leaves a stub line of one or two words that its sentence then continues
            # (the mark of a hard line break in the help text, re-wrapped by clap)
            indent = lambda line: len(line) - len(line.lstrip())
            for a, b in zip(lines, lines[1:]):
                continued = b.strip() and indent(a) == indent(b) and b.lstrip()[0].islower()
                if a.strip() and continued and not a.strip().endswith((".", ":", ",")):
                    assert len(a.split()) > 2 or a.lstrip().startswith(("-", "kiln", "[", "<")), (width, sub, a, b)
