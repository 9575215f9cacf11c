# nightshift: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATE ?= 2026-03-01
DEMO_CLIENTS ?= 20000
# Enough days for a past night (DEMO_PAST_DAYS before the demo date) to train on full windows and have its
# labels land (30 days) before the demo date, so the summary shows how its published scores did.
DEMO_DAYS ?= 125
DEMO_PAST_DAYS ?= 35

.PHONY: demo test bench venv clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m nightshift.sample --root data --end $$(date -d '$(DEMO_DATE) -1 day' +%F) --days $(DEMO_DAYS) --clients $(DEMO_CLIENTS) --seed 7
	$(VENV)/bin/luigi --module tasks DailyScoring --date $$(date -d '$(DEMO_DATE) -$(DEMO_PAST_DAYS) day' +%F) --local-scheduler
	$(VENV)/bin/luigi --module tasks DailyScoring --date $(DEMO_DATE) --local-scheduler
	bin/summary --date $(DEMO_DATE)

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf data var logs spark-warehouse
