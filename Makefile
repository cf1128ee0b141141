# The two commands of the README work on a fresh machine: each target installs what it needs.
# Every path passed on is quoted in the recipes, so it may hold spaces (OUT="my data"); a
# leading ~/ is expanded by `home`, as the shell did before the quotes. (`subst` works on the
# text as it is; the word functions, patsubst included, would squeeze repeated spaces.)
home = $(subst ^^,,$(subst ^^~/,$(HOME)/,^^$(1)))
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

SOURCE ?=
OUT ?=
DOMAINS ?=
TEST_LABELS ?=
WORKERS ?= 2
DEST ?=
FILES ?=
MIRROR ?=

.PHONY: install test run download prepare-data verify-data bench clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	"$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet "setuptools>=64" wheel
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test: install
	$(PY) -m pytest -q -n auto --dist loadfile

# Fetch the benchmark's three tarballs into DEST (resumable; checksums kept in DEST/downloads.json).
download: install
	$(if $(DEST),,$(error usage: make download DEST=~/decathlon [FILES=devkit,data,imagenet] [MIRROR=URL]))
	$(PY) -m data_prep download "$(call home,$(DEST))" $(if $(FILES),--files "$(FILES)") $(if $(MIRROR),--mirror "$(MIRROR)")

prepare-data: install
	$(PY) -m data_prep prepare $(if $(SOURCE),--source "$(call home,$(SOURCE))") $(if $(OUT),--out "$(call home,$(OUT))") \
		$(if $(DOMAINS),--domains "$(DOMAINS)") $(if $(TEST_LABELS),--test-labels "$(call home,$(TEST_LABELS))") \
		--workers "$(WORKERS)"

verify-data: install
	$(PY) -m data_prep verify "$(call home,$(or $(OUT),data/synthetic))"

run: prepare-data
	$(PY) run_decathlon.py

# Each benchmark prints ratios measured in one run; the printout is kept in results/bench/.
bench: prepare-data
	mkdir -p results/bench
	$(PY) bench/bench_prepare.py | tee results/bench/prepare_cpu.txt
	$(PY) bench/bench_loader.py --jpeg-root data/synthetic-source/decathlon-1.0 --shards data/synthetic \
		--domains imagenet12,aircraft --workers 2 --torch-threads 2 | tee results/bench/loader_cpu.txt
	$(PY) bench/bench_models.py
	$(PY) bench/bench_backbones.py

clean:
	rm -rf $(VENV) data runs *.egg-info
