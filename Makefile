# kiln — `make demo` and `make test` do all the set-up themselves (Debian packages, CMake, Python venv), quietly
# when everything is already there.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export CARGO_TARGET_DIR ?= $(HOME)/.cache/kiln-target
# cmake >= 3.28 (for LightGBM) comes from the venv; Debian's is too old
export PATH := $(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
KILN := $(CARGO_TARGET_DIR)/release/kiln
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
REQ_STAMP := $(VENV)/.req-$(shell sha256sum tests/requirements.txt | cut -c1-12)
# the reference tools that need pandas < 3 (skforecast, mlforecast) live in a second venv
FORECAST_VENV := $(CURDIR)/.venv-forecast
DRIFT_VENV := $(CURDIR)/.venv-drift
DRIFT_PY := $(DRIFT_VENV)/bin/python
DRIFT_REQ_STAMP := $(DRIFT_VENV)/.req-$(shell sha256sum tests/requirements-drift.txt | cut -c1-12)
FORECAST_PY := $(FORECAST_VENV)/bin/python
FORECAST_REQ_STAMP := $(FORECAST_VENV)/.req-$(shell sha256sum tests/requirements-forecast.txt | cut -c1-12)

.PHONY: help deps sysdeps venv venv-forecast venv-drift build python install demo test screenshots fmt clean-demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

sysdeps: ## Debian packages: clang, libclang-dev and libomp-dev (bindgen for LightGBM, XGBoost's build), postgresql (the study storage's tests), promtool, shellcheck
	@# libomp-dev: LightGBM and XGBoost are compiled by clang with LLVM's OpenMP runtime (.cargo/config.toml,
	@# crates/kiln-xgboost-sys/build.rs)
	@if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 \
	    || ! ls /usr/lib/llvm-*/lib/libomp.so >/dev/null 2>&1; then \
	  echo "installing clang, libclang-dev, libomp-dev"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang libclang-dev libomp-dev >/dev/null; \
	fi
	@# the tests start their own server with scripts/pg_server.sh, which finds /usr/lib/postgresql/<version>/bin
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing postgresql"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi
	@# promtool checks deploy/prometheus/ (tests/test_deploy.py): the one binary of Debian's prometheus package, unpacked
	@# from it rather than installing the package, which would enable and start a Prometheus server on this machine
	@if ! command -v promtool >/dev/null; then \
	  echo "installing promtool (from Debian's prometheus package)"; \
	  d=$$(mktemp -d) && chmod 755 "$$d" && $(SUDO) apt-get update -qq && \
	  (cd "$$d" && apt-get download -qq prometheus >/dev/null 2>&1) && dpkg-deb -x "$$d"/prometheus_*.deb "$$d/x" && \
	  $(SUDO) install -m 0755 "$$d/x/usr/bin/promtool" /usr/local/bin/promtool && rm -rf "$$d"; \
	fi
	@# shellcheck: actionlint checks the workflows' run: scripts with it, the tests the crontab's commands
	@if ! command -v shellcheck >/dev/null; then \
	  echo "installing shellcheck"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq shellcheck >/dev/null; \
	fi

venv: $(REQ_STAMP) ## Python venv with CMake and the pinned reference tools (mlflow, lightgbm, scikit-learn, ...)
$(REQ_STAMP): tests/requirements.txt
	@echo "installing the Python reference tools into .venv (first time: about 2 minutes)"
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	@rm -f $(VENV)/.req-* && touch $@

venv-forecast: $(FORECAST_REQ_STAMP) ## second Python venv for the reference tools that need pandas < 3 (skforecast, mlforecast)
$(FORECAST_REQ_STAMP): tests/requirements-forecast.txt
	@echo "installing the pandas < 3 reference tools into .venv-forecast (first time: about 1 minute)"
	@[ -x $(FORECAST_PY) ] || python3 -m venv $(FORECAST_VENV)
	@$(FORECAST_PY) -m pip install -q --disable-pip-version-check -r tests/requirements-forecast.txt
	@rm -f $(FORECAST_VENV)/.req-* && touch $@

venv-drift: $(DRIFT_REQ_STAMP) ## third Python venv for Evidently (pandas < 3), the reference of `kiln drift`
$(DRIFT_REQ_STAMP): tests/requirements-drift.txt
	@echo "installing Evidently into .venv-drift (first time: about 1 minute)"
	@[ -x $(DRIFT_PY) ] || python3 -m venv $(DRIFT_VENV)
	@$(DRIFT_PY) -m pip install -q --disable-pip-version-check -r tests/requirements-drift.txt
	@rm -f $(DRIFT_VENV)/.req-* && touch $@

deps: sysdeps venv

build: deps ## build the kiln binary (release)
	cargo build --release --locked -p kiln-cli

WHEELS := $(CARGO_TARGET_DIR)/wheels
python: deps ## build kiln's Python package (`import kiln`, PyO3) and install it into .venv
	@rm -rf "$(WHEELS)"
	@$(VENV)/bin/maturin build --release --locked --quiet -m crates/kiln-py/Cargo.toml --auditwheel skip \
	  --out "$(WHEELS)" 2>&1 | { grep -v -e "extension-module" -e "^🍹\|^🔗\|^🐍\|^📦" || true; }
	@$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$(WHEELS)"/kiln-*.whl
	@echo "installed kiln's Python package into $(VENV) ($$($(PY) -c 'import kiln; print(kiln.__version__)'))"

# where `make install` puts the binary: /usr/local/bin as root, else ~/.local/bin (PREFIX=/somewhere to choose)
PREFIX ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)

install: build ## put `kiln` on PATH: a copy of the release binary in $(PREFIX)/bin
	@install -d "$(PREFIX)/bin" && install -m 0755 "$(KILN)" "$(PREFIX)/bin/kiln"
	@echo "installed $(PREFIX)/bin/kiln ($$("$(PREFIX)/bin/kiln" --version))"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; \
	  *) echo "note: $(PREFIX)/bin is not on your PATH; add it: export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

demo: build ## train the EUR/USD model, register it as production, score a batch file
	./scripts/demo.sh $(KILN)

test: build python venv-forecast venv-drift ## the whole test suite: Rust unit/integration tests, then end-to-end tests against real MLflow
	cargo test --release --locked --workspace
	KILN=$(KILN) $(PY) -m pytest -q tests

screenshots: build ## MLflow UI screenshots of two churn runs and an EUR/USD backtest (docs/mlflow-ui/*.png), headless Chromium
	@command -v chromium >/dev/null || { echo "installing chromium"; $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@rm -rf out/screenshots && mkdir -p out/screenshots
	@$(KILN) train --config conf/experiments/churn_xgboost.yaml --tracking-uri out/screenshots/mlruns >/dev/null
	@$(KILN) train --config conf/experiments/churn.yaml --register --tracking-uri out/screenshots/mlruns >/dev/null
	@$(KILN) backtest --config conf/experiments/eurusd.yaml --tracking-uri out/screenshots/mlruns >/dev/null 2>&1
	@$(PY) scripts/mlflow_ui_screenshots.py out/screenshots/mlruns docs/mlflow-ui

fmt:
	cargo fmt --all
