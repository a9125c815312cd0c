#!/usr/bin/env bash
# Batch scoring of 1,000,000 rows: `kiln predict` against a pandas chunked script (pd.read_csv(chunksize=...) +
# lightgbm.Booster.predict) doing the same work, for the ETTh1 forecaster (lags up to 168 h, rolling windows, EWM,
# expanding mean, calendar) and the Telco churn classifier (median fill, bins, ratio, one-hot), CSV and Parquet in and
# out. Each run goes under /usr/bin/time -v; the table gives wall time, rows/s and peak resident memory (max RSS).
#
#   scripts/bench_batch.sh                 # 1,000,000 rows, chunks of 20,000 (kiln's default)
#   ROWS=200000 CHUNK=50000 scripts/bench_batch.sh
#
# Needs the release binary (built here unless KILN is set) and .venv (pandas, pyarrow, lightgbm: `make venv`).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
export CHUNK=${CHUNK:-20000}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/kiln-bench-batch.XXXXXX)}
if [[ -z "${KILN:-}" ]]; then
  cargo build --release --locked -p kiln-cli >&2
  KILN=${CARGO_TARGET_DIR:-target}/release/kiln
fi
mkdir -p "$WORK"
echo "work folder: $WORK" >&2

# models, trained with the shipped experiments into a store of their own
store="$WORK/mlruns"
for exp in etth1 churn; do
  if [[ ! -d "$WORK/bundle_$exp" ]]; then
    "$KILN" train --config "conf/experiments/$exp.yaml" --tracking-uri "$store" >"$WORK/train_$exp.log" 2>&1
    run=$(grep -oE 'run [0-9a-f]{32}' "$WORK/train_$exp.log" | tail -1 | cut -d' ' -f2)
    ln -sfn "$(dirname "$(find "$store" -path "*/$run/artifacts/model/MLmodel")")" "$WORK/bundle_$exp"
  fi
done

# inputs
if [[ ! -f "$WORK/data/churn.parquet" ]]; then
  "$PY" scripts/bench_batch.py gen "$ROWS" "$WORK/data"
fi

# one measured run: label, then the command; prints a table row
measure() {
  local label=$1 rows=$2; shift 2
  local log="$WORK/time_$(echo "$label" | tr ' /' '__').log"
  /usr/bin/time -v "$@" >"$log.out" 2>"$log"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  printf '| %s | %.2f | %s | %.1f |\n' "$label" "$wall" "$(awk -v r="$rows" -v w="$wall" 'BEGIN { printf "%d", r / w }')" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

echo
echo "| run ($ROWS rows, chunks of $CHUNK) | wall s | rows/s | peak RSS MB |"
echo "| --- | ---: | ---: | ---: |"
for model in etth1 churn; do
  for ext in csv parquet; do
    in="$WORK/data/$model.$ext"
    measure "kiln $model $ext -> $ext" "$ROWS" \
      "$KILN" predict --model "$WORK/bundle_$model" --input "$in" --output "$WORK/kiln_$model.$ext" --chunk-rows "$CHUNK"
    measure "pandas $model $ext -> $ext" "$ROWS" \
      "$PY" scripts/bench_batch.py "$model" "$WORK/bundle_$model" "$in" "$WORK/pandas_$model.$ext"
  done
done

echo
echo "agreement of the predictions (kiln vs pandas):"
for model in etth1 churn; do
  for ext in csv parquet; do
    printf '  %s %s: ' "$model" "$ext"
    "$PY" scripts/bench_batch.py compare "$WORK/kiln_$model.$ext" "$WORK/pandas_$model.$ext"
  done
done
