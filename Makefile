# fieldterm: every target sets itself up from a clean checkout on Debian (run as root).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BENCH_VENV := .venv-bench
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
ARGS ?=

.PHONY: help setup system-deps test lint demo bench chaos fuzz hil hil-image clean

help:
	@echo "make demo   - the whole system on this machine (broker, regional service, kiosk agent, scanner)"
	@echo "make test   - set up and run the whole test suite (lint, types, unit, end-to-end)"
	@echo "make bench  - benchmarks, a few minutes: MRZ vs PyPI mrz; sealed queries vs two plaintext echoes in"
	@echo "              interleaved passes (fails if a query is lost, refused, wrong or not audited); the SLTD"
	@echo "              index (10 M keys) vs SQLite in process and PostgreSQL over TCP on 127.0.0.1; the"
	@echo "              offline list (10 M keys): Python lookup over the map vs the C library, mapped vs loaded RSS."
	@echo "              ARGS=--full: index and offline list at 100 M keys (a few GB); ARGS=--quick: smoke sizes"
	@echo "make chaos  - faults against a local region (kills, broker/PostgreSQL restarts, partitions, loss,"
	@echo "              delay, half-open links in network namespaces, power cuts on a FUSE file system that"
	@echo "              drops unsynced writes, a full card, damaged files, clock steps, scanner storms): no scan"
	@echo "              lost, none wrong, none answered twice, no crash. Every scenario CHAOS_REPEAT times"
	@echo "              (20) over CHAOS_PARALLEL local regions at once (10), and beside them the fuzzers,"
	@echo "              FUZZ_INPUTS each (1000000; 0: none); ARGS=\"--seed N --scenario S\" (the scenarios')"
	@echo "make fuzz   - fuzz the framers, the MRZ parser, the regional's envelope and ticket parsing"
	@echo "              (FUZZ_SECONDS each, default 300), then a live fuzz through a real broker to a real"
	@echo "              regional (FUZZ_LIVE payloads, default 100000); ARGS='--inputs 1000000': 1 M each"
	@echo "make hil    - hardware-in-the-loop on emulated Raspberry Pi / aarch64 (QEMU)"

# Debian packages the tests and the demo run for real: the broker and PostgreSQL.
system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml scripts/micropython-deps.py
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python scripts/micropython-deps.py
	@touch $@

setup: system-deps $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check firmware host_tools tests
	$(BIN)/ruff format --check firmware host_tools tests
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/python -m host_tools.demo $(ARGS)

$(BENCH_VENV)/.installed: pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[bench]'
	@touch $@

bench: system-deps $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/fieldterm bench all $(ARGS)

chaos: setup
	@# the fuzzers (FUZZ_INPUTS each, 1 M; 0: none), FUZZ_JOBS at once, run beside the regions
	@# at nice 19: the regions mostly wait, and take the CPU first when they need it
	@rc=0; log=$$(mktemp); fuzz=; \
	if [ "$${FUZZ_INPUTS:-1000000}" != 0 ]; then \
	  echo "make chaos: fuzzing, $${FUZZ_INPUTS:-1000000} inputs a harness, beside the scenarios ($$log)"; \
	  nice -n 19 $(BIN)/python -m tests.fuzz.run --inputs $${FUZZ_INPUTS:-1000000} \
	    --live $${FUZZ_LIVE:-$${FUZZ_INPUTS:-1000000}} --jobs $${FUZZ_JOBS:-2} > $$log 2>&1 & fuzz=$$!; \
	fi; \
	$(BIN)/fieldterm chaos --store pg --repeat $${CHAOS_REPEAT:-20} --parallel $${CHAOS_PARALLEL:-10} $(ARGS) || rc=1; \
	if [ -n "$$fuzz" ]; then \
	  echo "make chaos: waiting for the fuzzers"; wait $$fuzz || rc=1; \
	  tail -n 25 $$log; \
	fi; \
	exit $$rc

fuzz: setup
	$(BIN)/python -m tests.fuzz.run --seconds $${FUZZ_SECONDS:-300} --live $${FUZZ_LIVE:-100000} $(ARGS)

hil-image: setup
	$(BIN)/python -m host_tools.hil.image $(ARGS)

hil: setup
	$(BIN)/python -m host_tools.hil.rig $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
