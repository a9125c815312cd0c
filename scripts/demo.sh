#!/usr/bin/env bash
# The demo behind `make demo`: train the EUR/USD model on the shipped ECB data, register it as production, and score
# a batch file of recent rows with models:/eurusd@production, then backtest the pipeline on 10 walk-forward folds with a
# trading simulation. Everything goes to out/demo/ (recreated each time).
set -euo pipefail
KILN=${1:?usage: scripts/demo.sh path/to/kiln}
cd "$(dirname "$0")/.."
DEMO=out/demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
export MLFLOW_TRACKING_URI="$DEMO/mlruns"

echo "== 1. the merged experiment config (conf/experiments/eurusd.yaml extends conf/base/*.yaml)"
"$KILN" config show conf/experiments/eurusd.yaml | head -n 20
echo "   ..."
echo
echo "== 2. train, evaluate against persistence, track, register"
"$KILN" train --config conf/experiments/eurusd.yaml --register
echo
echo "== 3. a batch file: the 300 most recent days of the ECB file (it is newest-first)"
head -n 301 data/ecb_eurofxref-hist.csv > "$DEMO/eurusd-recent.csv"
"$KILN" predict --model models:/eurusd@production --input "$DEMO/eurusd-recent.csv" --output "$DEMO/eurusd-predictions.csv"
echo
echo "the last predictions (each is the next business day's EUR/USD, made at the row's date):"
tail -n 5 "$DEMO/eurusd-predictions.csv"
echo
echo "== 4. backtest: the same pipeline refitted on 10 walk-forward folds, beside persistence, and a trading simulation"
"$KILN" backtest --config conf/experiments/eurusd.yaml 2>/dev/null
echo
echo "== done. Runs and the registry are in $DEMO/mlruns, in MLflow's layout. To browse them:"
echo "   MLFLOW_ALLOW_FILE_STORE=true .venv/bin/mlflow ui --backend-store-uri $DEMO/mlruns --artifacts-destination $DEMO/mlruns"
