#!/usr/bin/env bash
# Single-record HTTP prediction and batch scoring of one LightGBM model (500 trees x 31 leaves, 20 numeric features):
# `kiln serve` against a FastAPI app written the way a typical tutorial does (pydantic record -> pandas DataFrame per
# request, gunicorn with 2 uvicorn workers), an optimised FastAPI app (numpy row, async endpoint, uvicorn with 2
# workers, uvloop, httptools) and `mlflow models serve` (2 workers) on kiln's own bundle; then `kiln predict` against
# a pandas chunked script on a 1,000,000-row file.
#
#   scripts/bench_serve.sh                       # 10 s per measurement, concurrency 1, 8 and 32
#   BENCH_SECONDS=30 WORK=/tmp/kbs scripts/bench_serve.sh
#   SERVERS="kiln fastapi_numpy" BATCH=0 scripts/bench_serve.sh
#
# Environment: BENCH_SECONDS (10) and WARMUP_SECONDS (3) per wrk run; CONCURRENCY ("1 8 32"); SERVERS (kiln
# kiln_defaults fastapi_tutorial fastapi_numpy mlflow: kiln is `kiln serve --access-log off` (live drift on, its
# default when the bundle has a profile), kiln_defaults every flag at its default; also kiln_drift_off, kiln with
# --no-live-drift, for the live drift benchmark: SERVERS="kiln_drift_off kiln kiln_drift_off kiln" CONCURRENCY=8
# RECORDS=varied BATCH=0);
# RECORDS (same: every request posts the same record; varied: 1,000 different records in turn);
# BATCH (1: also the batch part) with BATCH_ROWS (1000000) and CHUNK (20000); TRAIN_ROWS (20000); WORK (a new
# folder under /tmp; keeps the data, the store and every log); KILN (the binary; built here when unset).
#
# One server runs at a time. wrk runs on the same machine (-t1 at concurrency 1, -t2 above), so the load generator
# and the server share the cores. Before any timing, every server's prediction for the same record must equal kiln
# serve's (and Python LightGBM's) within 1e-9, or the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

BENCH_SECONDS=${BENCH_SECONDS:-10}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
RECORDS=${RECORDS:-same}
case $RECORDS in same) many= ;; varied) many=s ;; *) echo "RECORDS is same or varied" >&2; exit 2 ;; esac
SERVERS=${SERVERS:-"kiln kiln_defaults fastapi_tutorial fastapi_numpy mlflow"}
BATCH=${BATCH:-1}
BATCH_ROWS=${BATCH_ROWS:-1000000}
TRAIN_ROWS=${TRAIN_ROWS:-20000}
export CHUNK=${CHUNK:-20000}
WORK=${WORK:-$(mktemp -d /tmp/kiln-bench-serve.XXXXXX)}
VENV=$root/.venv
PY=$VENV/bin/python
HELP="$PY $root/scripts/bench_serve/bench.py"
export PATH=$VENV/bin:$PATH
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
echo "work folder: $WORK; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ---- every server started here is stopped on exit, whatever happens ----
servers=()
cleanup() {
  for pid in "${servers[@]}"; do $HELP stop "$pid" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools: wrk (Debian), the bench-only Python packages, the kiln binary ----
if ! command -v wrk >/dev/null; then
  sudo=; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get install -y -qq wrk >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null; }
fi
if ! "$PY" - "$root/scripts/bench_serve/requirements.txt" <<'EOF'
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    name, _, version = re.sub(r"#.*", "", line).strip().partition("==")
    if name:
        try:
            assert m.version(name) == version
        except Exception:
            sys.exit(1)
EOF
then
  "$PY" -m pip install -q --disable-pip-version-check -r scripts/bench_serve/requirements.txt
fi
if [[ -z "${KILN:-}" ]]; then
  cargo build --release --locked -p kiln-cli >&2
  KILN=${CARGO_TARGET_DIR:-target}/release/kiln
fi
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")

# ---- data and the model, registered as bench_serve@production in the bench store ----
if [[ ! -f "$WORK/batch.csv" || ! -f "$WORK/mlflow_records.json" ]]; then
  echo "generating $TRAIN_ROWS training rows and $BATCH_ROWS batch rows" >&2
  $HELP gen "$WORK" "$TRAIN_ROWS" "$BATCH_ROWS"
fi
store=$WORK/mlruns
ref=models:/bench_serve@production
if [[ ! -e "$WORK/bundle" ]]; then
  $HELP experiment "$WORK"
  "$KILN" train --config "$WORK/experiment.yaml" --register --tracking-uri "$store" >"$WORK/train.log" 2>&1
  run=$(grep -oE 'run [0-9a-f]{32}' "$WORK/train.log" | tail -1 | cut -d' ' -f2)
  ln -sfn "$(dirname "$(find "$store" -path "*/$run/artifacts/model/MLmodel")")" "$WORK/bundle"
fi
bundle=$(readlink -f "$WORK/bundle")
export BENCH_MODEL_FILE=$bundle/model.lgb
read -r trees max_leaves min_leaves < <($HELP trees "$BENCH_MODEL_FILE")
if [[ $trees -ne 500 || $max_leaves -ne 31 ]]; then
  echo "the model has $trees trees of at most $max_leaves leaves, not 500 x 31" >&2
  exit 1
fi
echo "model: $ref = $bundle ($trees trees, $min_leaves-$max_leaves leaves)" >&2
expected=$($HELP reference "$BENCH_MODEL_FILE" "$WORK/record.json")

# ---- one server: start, time to ready, check its answer, warm up, measure ----
# adds one table row per concurrency; $1 the name, $2 the readiness route, $3 the predict route, $4 the body file's
# name (record or mlflow_record), then the command (PORT in it is replaced by a free port)
rows=()
bench_server() {
  local name=$1 ready_route=$2 predict_route=$3 body=$WORK/$4.json load_body=$WORK/$4$many.json; shift 4
  local port; port=$($HELP free_port)
  local cmd=("${@//PORT/$port}")
  local pid ready_ms
  read -r pid ready_ms < <($HELP launch "$WORK/$name.log" "http://127.0.0.1:$port$ready_route" -- "${cmd[@]}")
  servers+=("$pid")
  local url=http://127.0.0.1:$port$predict_route
  local got; got=$($HELP predict "$url" "$body")
  # kiln serve's answer is the reference (the first server measured; Python LightGBM's until then)
  if [[ $name == kiln* && -z $kiln_value ]]; then kiln_value=$got; fi
  if ! awk -v a="$got" -v b="${kiln_value:-$expected}" -v c="$expected" \
      'BEGIN { d1 = a - b; d2 = a - c; exit !((d1 < 0 ? -d1 : d1) <= 1e-9 && (d2 < 0 ? -d2 : d2) <= 1e-9) }'; then
    echo "FAIL: $name predicts $got for the record, kiln serve ${kiln_value:-?}, Python LightGBM $expected" >&2
    exit 1
  fi
  echo "$name: ready in $ready_ms ms, prediction $got (kiln serve ${kiln_value:-?}, Python LightGBM $expected)" >&2
  local lua=$root/scripts/bench_serve/post.lua
  wrk -t2 -c8 -d"${WARMUP_SECONDS}s" -s "$lua" "$url" -- "$load_body" >"$WORK/${name}_${RECORDS}_warmup.txt"
  local c
  for c in $CONCURRENCY; do
    local threads=2; [[ $c -eq 1 ]] && threads=1
    local out=$WORK/${name}_${RECORDS}_c$c.txt
    local cpu_before cpu_after busy_before busy_after
    busy_before=$($HELP busy)
    cpu_before=$($HELP cpu "$pid")
    /usr/bin/time -f '%e %U %S' -o "$out.time" \
      wrk -t"$threads" -c"$c" -d"${BENCH_SECONDS}s" --latency -s "$lua" "$url" -- "$load_body" >"$out"
    cpu_after=$($HELP cpu "$pid")
    busy_after=$($HELP busy)
    # what else kept the cores busy meanwhile (other processes: compiles...), in cores on average
    local load; load=$(awk -v b0="$busy_before" -v b1="$busy_after" -v s0="$cpu_before" -v s1="$cpu_after" \
      '{ x = (b1 - b0 - (s1 - s0) - $2 - $3) / $1; printf "%.2f", x < 0 ? 0 : x }' "$out.time")
    local rps p50 p99 requests bad errors
    read -r rps p50 p99 requests bad errors < <($HELP wrk "$out")
    # the server's own CPU time per answered request (all its processes), in microseconds
    local cpu_us; cpu_us=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$requests" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')
    if [[ $bad -ne 0 || $errors != none ]]; then
      echo "FAIL: $name at concurrency $c: $bad non-2xx answers, socket errors: $errors (see $out)" >&2
      exit 1
    fi
    echo "  c=$c: $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu_us us/request (other processes: $load cores)" >&2
    rows+=("$name|$c|$rps|$p50|$p99|$cpu_us|$ready_ms|$load")
  done
  if [[ $name == kiln ]]; then
    # the HTTP stack alone: kiln's own GET /health at concurrency 8, the ceiling a prediction route can approach
    local hout=$WORK/kiln_health_c8.txt cpu_before cpu_after
    cpu_before=$($HELP cpu "$pid")
    wrk -t2 -c8 -d"${BENCH_SECONDS}s" --latency "http://127.0.0.1:$port/health" >"$hout"
    cpu_after=$($HELP cpu "$pid")
    local rps p50 p99 requests bad errors
    read -r rps p50 p99 requests bad errors < <($HELP wrk "$hout")
    local cpu_us; cpu_us=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$requests" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')
    echo "  GET /health c=8: $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu_us us/request" >&2
    rows+=("kiln, GET /health|8|$rps|$p50|$p99|$cpu_us|-|-")
  fi
  local rss pss procs
  read -r rss pss procs < <($HELP memory "$pid")
  echo "  memory after the load: $rss MB resident (VmRSS summed over $procs processes), $pss MB PSS" >&2
  memory+=("$name|$rss|$pss|$procs")
  $HELP stop "$pid"
}

memory=()
kiln_value=
for server in $SERVERS; do
  case $server in
    kiln)
      # without an access log, as the FastAPI apps run (when this kiln has the flag)
      quiet=(); "$KILN" serve --help | grep -q -- '--access-log' && quiet=(--access-log off)
      bench_server kiln /ready /predict record \
        "$KILN" serve --model "$ref" --port PORT --tracking-uri "$store" "${quiet[@]}" ;;
    kiln_drift_off)
      # as `kiln`, with live drift off: `kiln` and this one side by side are the live drift benchmark
      bench_server kiln_drift_off /ready /predict record \
        "$KILN" serve --model "$ref" --port PORT --tracking-uri "$store" --access-log off --no-live-drift ;;
    kiln_defaults)
      # every flag at its default (a JSON access log line per request on stdout, here a file)
      bench_server kiln_defaults /ready /predict record \
        "$KILN" serve --model "$ref" --port PORT --tracking-uri "$store" ;;
    fastapi_tutorial)
      bench_server fastapi_tutorial /ready /predict record \
        gunicorn -w 2 -k uvicorn.workers.UvicornWorker -b 127.0.0.1:PORT --chdir "$root/scripts/bench_serve" \
        fastapi_tutorial:app ;;
    fastapi_numpy)
      bench_server fastapi_numpy /ready /predict record \
        uvicorn --app-dir "$root/scripts/bench_serve" fastapi_numpy:app --workers 2 --loop uvloop --http httptools \
        --no-access-log --host 127.0.0.1 --port PORT ;;
    mlflow)
      bench_server mlflow /ping /invocations mlflow_record \
        mlflow models serve -m "$bundle" --env-manager local --host 127.0.0.1 -p PORT -w 2 ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
done

echo
echo "Single-record POST ($RECORDS records), ${BENCH_SECONDS} s per run after a ${WARMUP_SECONDS} s warm-up;" \
  "wrk on the same machine (-t1 at concurrency 1, -t2 above)"
echo
echo "| server | concurrency | req/s | p50 ms | p99 ms | server CPU us/req | ready ms | other processes, cores |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "${rows[@]}"; do
  IFS='|' read -r name c rps p50 p99 cpu_us ready load <<<"$row"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$rps" "$p50" "$p99" "$cpu_us" "$ready" "$load"
done
echo
echo "| server | VmRSS MB (sum) | PSS MB (sum) | processes |"
echo "| --- | ---: | ---: | ---: |"
for row in "${memory[@]}"; do
  IFS='|' read -r name rss pss procs <<<"$row"
  printf '| %s | %s | %s | %s |\n' "$name" "$rss" "$pss" "$procs"
done

# ---- batch: kiln predict against pandas chunks, same file, same model ----
[[ $BATCH == 1 ]] || exit 0
measure() {
  local label=$1; shift
  local log=$WORK/time_$label.log
  local b0 b1; b0=$($HELP busy)
  /usr/bin/time -v "$@" >"$log.out" 2>"$log"
  b1=$($HELP busy)
  echo "$label: other processes used $(awk -v b0="$b0" -v b1="$b1" '/User time/ {u = $NF} /System time/ {s = $NF}
    /Elapsed/ {split($NF, t, ":"); w = (length(t) == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2]}
    END { printf "%.2f", (b1 - b0 - u - s) / w }' "$log") cores meanwhile" >&2
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  batch_rows+=("$label|$wall|$(awk -v r="$BATCH_ROWS" -v w="$wall" 'BEGIN { printf "%d", r / w }')|$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')")
}
batch_rows=()
measure kiln "$KILN" predict --model "$ref" --tracking-uri "$store" --input "$WORK/batch.csv" \
  --output "$WORK/kiln_predictions.csv" --chunk-rows "$CHUNK"
measure kiln_1_thread "$KILN" predict --model "$ref" --tracking-uri "$store" --input "$WORK/batch.csv" \
  --output "$WORK/kiln_1_thread_predictions.csv" --chunk-rows "$CHUNK" --threads 1
measure pandas $HELP pandas_batch "$BENCH_MODEL_FILE" "$WORK/batch.csv" "$WORK/pandas_predictions.csv" 0
measure pandas_1_thread $HELP pandas_batch "$BENCH_MODEL_FILE" "$WORK/batch.csv" "$WORK/pandas_1_thread_predictions.csv" 1
cmp -s "$WORK/kiln_predictions.csv" "$WORK/kiln_1_thread_predictions.csv" \
  || { echo "kiln predict wrote other bytes on 1 thread than on every core" >&2; exit 1; }
echo
echo "Batch scoring, $BATCH_ROWS rows x 20 features (CSV -> CSV), chunks of $CHUNK; kiln and pandas on every core"
echo "(kiln --threads default, LightGBM num_threads=0) and on one thread"
echo
echo "| run | wall s | rows/s | peak RSS MB |"
echo "| --- | ---: | ---: | ---: |"
for row in "${batch_rows[@]}"; do
  IFS='|' read -r label wall rps rss <<<"$row"
  printf '| %s | %.2f | %s | %s |\n' "$label" "$wall" "$rps" "$rss"
done
echo
echo "kiln predict $(grep -E '\] time: ' "$WORK/time_kiln.log" | sed 's/.*\] //')"
kiln_times=$(grep -E '\] time: ' "$WORK/time_kiln_1_thread.log" | sed 's/.*\] //')
echo "kiln predict --threads 1 $kiln_times"
grep -hE '^pandas ' "$WORK/time_pandas.log" "$WORK/time_pandas_1_thread.log" || true
kiln_wall=$(echo "${batch_rows[1]}" | cut -d'|' -f2)
model_s=$(echo "$kiln_times" | grep -oE 'model prediction [0-9.]+' | grep -oE '[0-9.]+$')
awk -v w="$kiln_wall" -v m="$model_s" 'BEGIN { printf "kiln overhead over the model'"'"'s own time (one thread): (wall %.2f s - model %.2f s) / model = %.0f%%\n", w, m, 100 * (w - m) / m }'
pandas_wall=$(echo "${batch_rows[2]}" | cut -d'|' -f2)
awk -v k="$(echo "${batch_rows[0]}" | cut -d'|' -f2)" -v p="$pandas_wall" 'BEGIN { printf "every core: pandas / kiln = %.1fx\n", p / k }'
printf 'agreement (kiln vs pandas): '
$HELP compare "$WORK/kiln_predictions.csv" "$WORK/pandas_predictions.csv"
