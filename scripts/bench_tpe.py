"""kiln's TPE against Optuna 4.9's TPESampler on the objectives of crates/kiln-train/examples/tpe_bench.rs.

Runs the example (quality: 30 seeds x 200 trials per objective, kiln TPE and random search), runs Optuna's
TPESampler(seed) and RandomSampler(seed) on the same objectives, and prints, per objective and checkpoint, the
median best-so-far of each, the median difference kiln - Optuna with a 95% bootstrap interval (seeds resampled,
10,000 draws) and a two-sided Mann-Whitney U p-value over the 30 seeds. `--overhead` also times the sampler per
trial over 1,000 trials (kiln vs Optuna in memory).

`--workers K` instead compares TPE with and without the constant liar when K workers ask in turns (each round's K
trials drawn while the round's earlier ones run, then all told): the median best after each quarter of `--trials`,
the median difference liar - honest with its bootstrap interval and p-value, and how many seeds' liar runs equal
Optuna's `TPESampler(constant_liar=True)` under the same protocol.

    CARGO_TARGET_DIR=... .venv/bin/python scripts/bench_tpe.py [--seeds 30] [--trials 200] [--overhead]
`--conditional` compares TPE independent, multivariate, and multivariate with `group` on a model competition (a
categorical `model` picking Branin's or 6-D Hartmann's own parameters, plus a shared one): the median best after each
quarter of `--trials`, the median difference group - multivariate (and group - independent) with its bootstrap
interval and p-value, and how many seeds' group runs equal Optuna's `TPESampler(multivariate=True, group=True)`.

    CARGO_TARGET_DIR=... .venv/bin/python scripts/bench_tpe.py --workers 4 --trials 100
    CARGO_TARGET_DIR=... .venv/bin/python scripts/bench_tpe.py --conditional --trials 200
"""

import argparse
import json
import math
import os
import subprocess
import time

import numpy as np
import optuna
from scipy.stats import mannwhitneyu

optuna.logging.set_verbosity(optuna.logging.ERROR)


def mixed(trial):
    x = trial.suggest_float("x", -5.0, 5.0)
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    n = trial.suggest_int("n", 1, 100)
    cat = trial.suggest_categorical("cat", ["a", "b", "c", "d"])
    c = {"a": 0.3, "b": 0.0, "c": 0.6, "d": 0.9}[cat]
    return (x - 1.3) * (x - 1.3) / 10.0 + (math.log10(lr) + 2.5) * (math.log10(lr) + 2.5) / 4.0 + abs(n - 37.0) / 50.0 + c


def branin(trial):
    x1 = trial.suggest_float("x1", -5.0, 10.0)
    x2 = trial.suggest_float("x2", 0.0, 15.0)
    b = 5.1 / (4.0 * math.pi * math.pi)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(trial):
    x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


OBJECTIVES = {"mixed4": mixed, "branin": branin, "hartmann6": hartmann6}


def kiln(mode, *args):
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "kiln-train", "--example", "tpe_bench"], check=True)
    out = subprocess.run([f"{target}/release/examples/tpe_bench", mode, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def optuna_best(objective, sampler, trials, checkpoints):
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=trials)
    values = [t.value for t in study.trials]
    return [min(values[:c]) for c in checkpoints]


def optuna_workers_best(objective, seed, trials, k, checkpoints):
    import warnings

    warnings.simplefilter("ignore")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    for start in range(0, trials, k):
        asked = []
        for _ in range(min(k, trials - start)):
            trial = study.ask()
            asked.append((trial, objective(trial)))
        for trial, value in asked:
            study.tell(trial, value)
    values = [t.value for t in study.trials]
    return [min(values[:c]) for c in checkpoints]


def workers(args):
    ours = kiln("workers", args.seeds, args.trials, args.workers)
    checkpoints = ours["checkpoints"]
    rng = np.random.default_rng(0)
    report = {}
    for name, objective in OBJECTIVES.items():
        res = ours["results"][name]
        theirs = [optuna_workers_best(objective, s, args.trials, args.workers, checkpoints) for s in range(args.seeds)]
        rows = []
        for ci, c in enumerate(checkpoints):
            honest = [r[ci] for r in res["honest"]]
            liar = [r[ci] for r in res["liar"]]
            lo, hi = bootstrap_median_diff(liar, honest, rng)
            rows.append({
                "trials": c, "median_honest": float(np.median(honest)), "median_liar": float(np.median(liar)),
                "diff_ci95": [float(lo), float(hi)],
                "mann_whitney_p": float(mannwhitneyu(liar, honest, alternative="two-sided").pvalue),
                "liar_better_seeds": int(sum(a < b for a, b in zip(liar, honest))),
                "liar_worse_seeds": int(sum(a > b for a, b in zip(liar, honest))),
                "liar_seeds_identical_to_optuna": int(sum(abs(a - r[ci]) <= 1e-12 * max(1.0, abs(r[ci]))
                                                          for a, r in zip(liar, theirs))),
            })
        report[name] = rows
    print(json.dumps({"workers": args.workers, "seeds": args.seeds, "report": report}, indent=1))


def competition(trial):
    model = trial.suggest_categorical("model", ["branin", "hartmann"])
    if model == "branin":
        x1 = trial.suggest_float("b.x1", -5.0, 10.0)
        x2 = trial.suggest_float("b.x2", 0.0, 15.0)
        b = 5.1 / (4.0 * math.pi * math.pi)
        c = 5.0 / math.pi
        t = 1.0 / (8.0 * math.pi)
        branch = ((x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0) / 10.0
    else:
        x = [trial.suggest_float(f"h.x{i}", 0.0, 1.0) for i in range(6)]
        branch = -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) * (x[j] - P[i][j]) for j in range(6)))
                      for i in range(4)) + 3.32237
    s = trial.suggest_float("s", 0.0, 1.0)
    return branch + (s - 0.5) * (s - 0.5)


def conditional(args):
    import warnings

    warnings.simplefilter("ignore")
    ours = kiln("conditional", args.seeds, args.trials)
    checkpoints = ours["checkpoints"]
    res = ours["results"]
    t0 = time.time()
    theirs = [optuna_best(competition, optuna.samplers.TPESampler(seed=s, multivariate=True, group=True), args.trials,
                          checkpoints) for s in range(args.seeds)]
    rng = np.random.default_rng(0)
    rows = []
    for ci, c in enumerate(checkpoints):
        col = {k: [r[ci] for r in v] for k, v in res.items()}
        row = {"trials": c, **{f"median_{k}": float(np.median(v)) for k, v in col.items()}}
        for other in ["multivariate", "independent"]:
            lo, hi = bootstrap_median_diff(col["group"], col[other], rng)
            row[f"group_minus_{other}_ci95"] = [float(lo), float(hi)]
            row[f"group_vs_{other}_p"] = float(mannwhitneyu(col["group"], col[other], alternative="two-sided").pvalue)
            row[f"group_better_than_{other}_seeds"] = int(sum(a < b for a, b in zip(col["group"], col[other])))
        row["group_seeds_identical_to_optuna"] = int(sum(abs(a - r[ci]) <= 1e-12 * max(1.0, abs(r[ci]))
                                                         for a, r in zip(col["group"], theirs)))
        rows.append(row)
    print(f"optuna took {time.time() - t0:.0f} s", flush=True)
    print(json.dumps({"seeds": args.seeds, "report": rows}, indent=1))


def bootstrap_median_diff(a, b, rng, n=10_000):
    a, b = np.asarray(a), np.asarray(b)
    d = [np.median(rng.choice(a, a.size)) - np.median(rng.choice(b, b.size)) for _ in range(n)]
    return np.percentile(d, [2.5, 97.5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--conditional", action="store_true")
    args = ap.parse_args()
    if args.workers:
        return workers(args)
    if args.conditional:
        return conditional(args)
    ours = kiln("quality", args.seeds, args.trials)
    checkpoints = ours["checkpoints"]
    rng = np.random.default_rng(0)
    report = {}
    for name, objective in OBJECTIVES.items():
        t0 = time.time()
        theirs = {
            "tpe": [optuna_best(objective, optuna.samplers.TPESampler(seed=s), args.trials, checkpoints) for s in range(args.seeds)],
            "random": [optuna_best(objective, optuna.samplers.RandomSampler(seed=s), args.trials, checkpoints) for s in range(args.seeds)],
        }
        rows = []
        for ci, c in enumerate(checkpoints):
            k_tpe = [r[ci] for r in ours["results"][name]["tpe"]]
            o_tpe = [r[ci] for r in theirs["tpe"]]
            k_rand = [r[ci] for r in ours["results"][name]["random"]]
            o_rand = [r[ci] for r in theirs["random"]]
            lo, hi = bootstrap_median_diff(k_tpe, o_tpe, rng)
            p = mannwhitneyu(k_tpe, o_tpe, alternative="two-sided").pvalue
            rows.append({
                "trials": c,
                "median_kiln_tpe": float(np.median(k_tpe)), "median_optuna_tpe": float(np.median(o_tpe)),
                "median_kiln_random": float(np.median(k_rand)), "median_optuna_random": float(np.median(o_rand)),
                "diff_ci95": [float(lo), float(hi)], "mann_whitney_p": float(p),
                "seeds_identical": int(sum(abs(a - b) <= 1e-12 * max(1.0, abs(b)) for a, b in zip(k_tpe, o_tpe))),
            })
        report[name] = rows
        print(f"{name}: optuna took {time.time() - t0:.0f} s", flush=True)
    print(json.dumps(report, indent=1))
    if args.overhead:
        ko = kiln("overhead", 1000)
        res = {"kiln": ko}
        for multivariate in [False, True]:
            times = []
            sampler = optuna.samplers.TPESampler(seed=0, multivariate=multivariate)
            study = optuna.create_study(sampler=sampler)
            for _ in range(1000):
                t0 = time.perf_counter()
                trial = study.ask()
                x = trial.suggest_float("x", -5.0, 5.0)
                lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
                n = trial.suggest_int("n", 1, 100)
                cat = trial.suggest_categorical("cat", ["a", "b", "c", "d"])
                times.append(time.perf_counter() - t0)
                c = {"a": 0.3, "b": 0.0, "c": 0.6, "d": 0.9}[cat]
                study.tell(trial, (x - 1.3) ** 2 / 10.0 + (math.log10(lr) + 2.5) ** 2 / 4.0 + abs(n - 37.0) / 50.0 + c)
            key = "tpe_multivariate" if multivariate else "tpe"
            res[f"optuna_{key}"] = {
                "ms_per_trial_by_100": [1e3 * float(np.mean(times[i:i + 100])) for i in range(0, 1000, 100)],
                "ms_per_trial": 1e3 * float(np.mean(times)),
            }
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
