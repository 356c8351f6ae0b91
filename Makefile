# recsys developer commands. Everything runs inside ./.venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, installed before anything else: a bare `torch`
# requirement on an empty environment resolves to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: venv demo data test test-fast test-nodata test-hog fuzz mutate readme bench bench-smoke bench-scale bench-scores bench-import bench-families clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m compileall -q recsys  # (as a wheel install does: `recsys topk` starts without compiling)
	touch $@

# Fit the default zoo and print the top-5 models for one dataset.
demo: venv
	$(BIN)/recsys fit
	$(BIN)/recsys topk --dataset 269_clipart_32 -k 5
	@echo
	@echo "recsys is installed in $(VENV): run $(BIN)/recsys --help, or 'source $(BIN)/activate' and then recsys --help"

# Download the reference zoos into the user cache (skip when RECSYS_DATA_DIR holds them).
data: venv
	$(BIN)/recsys info --zoo domainnet-270 > /dev/null
	$(BIN)/recsys info --zoo transfergraph-image > /dev/null
	$(BIN)/recsys info --zoo vtab-hf > /dev/null
	$(BIN)/recsys info --zoo parc-71 > /dev/null

# The whole test suite (uses RECSYS_DATA_DIR when set, e.g. ../shared/data).
test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the tests marked slow.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The suite as on a fresh clone without the reference data and without a network: RECSYS_DATA_DIR an empty
# directory (the tests that need the data are skipped, with one reason), RECSYS_DATA_URL a mirror that refuses
# every connection (nothing is downloaded).
test-nodata: venv
	@empty=$$(mktemp -d) && trap 'rmdir "$$empty"' EXIT && \
	RECSYS_DATA_DIR="$$empty" RECSYS_DATA_URL=http://127.0.0.1:9/no-network HF_HUB_OFFLINE=1 \
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The suite beside a CPU hog (`yes > /dev/null` on every core, HOG_JOBS of them): no test may depend on how fast
# the machine is, nor on when a thread is scheduled.
HOG_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test-hog: venv
	@pids=; for i in $$(seq $(HOG_JOBS)); do yes > /dev/null & pids="$$pids $$!"; done; \
	trap 'kill $$pids 2>/dev/null' EXIT; echo "recsys: $(HOG_JOBS) CPU hog(s) running (yes > /dev/null)"; \
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
# The property-based tests (every reader, the metrics, the answers) with 2,000 examples each instead of 25.
FUZZ_TESTS ?= tests/test_fuzz_readers.py tests/test_fuzz_model_file.py tests/test_properties_answer.py tests/test_metrics.py
fuzz: venv
	RECSYS_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q $(FUZZ_TESTS) $(PYTEST_ARGS)

# Mutation testing of the core (mutmut, one module at a time; hours on 2 cores) -> benchmarks/results/mutation.md;
# e.g. make mutate MUTATE_ARGS="--modules metrics,answer --jobs 2".
MUTATE_ARGS ?= --jobs 1
mutate: venv
	$(BIN)/python benchmarks/mutation.py $(MUTATE_ARGS)

# Run the README's examples and write their outputs and timings into README.md.
readme: venv
	$(BIN)/python benchmarks/readme_examples.py

# Both published protocols, every engine, and the reference points of ceilings.md; regenerates benchmarks/results/.
bench: venv
	$(BIN)/python benchmarks/run_all.py --out benchmarks/results
	$(BIN)/python benchmarks/ceilings.py --out benchmarks/results

bench-smoke: venv
	$(BIN)/python benchmarks/run_all.py --smoke --out benchmarks/results/tmp

# Synthetic zoos from 10 x 270 to 10,000 x 100,000 (10 M records), every engine that finishes;
# regenerates benchmarks/results/scale.md. Zoos are cached in $RECSYS_SCALE_CACHE (default: a temporary
# directory); e.g. make bench-scale SCALE_ARGS="--sizes 2.7k,10k --engines additive,lightfm".
SCALE_ARGS ?=
bench-scale: venv
	$(BIN)/python benchmarks/scale.py --out benchmarks/results $(SCALE_ARGS)

# Speed of each transferability metric (recsys.scores) -> benchmarks/results/scores_speed.md
bench-scores: venv
	$(BIN)/python benchmarks/scores_speed.py --out benchmarks/results

# recsys import mlflow on an SQLite store of 100,000 Trainer-like runs -> benchmarks/results/import_speed.md.
# The store (3.4 GB) is built once into the temporary directory (about 10 minutes) and reused;
# e.g. make bench-import IMPORT_ARGS="--store /data/runs.db --runs 20000".
IMPORT_ARGS ?=
bench-import: venv
	$(BIN)/python benchmarks/import_speed.py --out benchmarks/results $(IMPORT_ARGS)

# The sequential protocol on generated zoos of fine-tune families -> benchmarks/results/families.md (under a minute).
bench-families: venv
	$(BIN)/python benchmarks/families.py --out benchmarks/results

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
