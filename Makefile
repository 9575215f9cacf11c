# nightshift: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATE ?= 2026-03-01
DEMO_CLIENTS ?= 20000
DEMO_DAYS ?= 95

.PHONY: demo test bench venv clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m nightshift.sample --root data --end $$(date -d '$(DEMO_DATE) -1 day' +%F) --days $(DEMO_DAYS) --clients $(DEMO_CLIENTS) --seed 7
	$(VENV)/bin/luigi --module tasks DailyScoring --date $(DEMO_DATE) --local-scheduler
	bin/summary --date $(DEMO_DATE)

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf data var logs spark-warehouse
