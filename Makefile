# The two commands: `make demo` runs the shop, `make test` runs the suite. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.lock | cut -d' ' -f1)
PANGO_HINT := WeasyPrint (invoice PDFs) needs the Pango library. Install it with:\n  Debian/Ubuntu: sudo apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0\n  Fedora: sudo dnf install -y pango\n  macOS: brew install pango
# UPDATE ... RETURNING (jobkit/relay.py) needs SQLite 3.35 (2021); Django 5.2 alone asks for 3.31.
SQLITE_HINT := The shop needs SQLite 3.35 or later (UPDATE ... RETURNING), and the SQLite of this Python is older.\n  Use a Python linked against a newer SQLite (Debian 12 and Ubuntu 22.04 ship one).

.PHONY: demo test tour bench chaos lab lint format lock clean system-check

demo: $(STAMP) system-check
	$(PY) manage.py demo

test: $(STAMP) system-check
	$(PY) -m pytest $(PYTEST_ARGS)

# docs/tour.md's screenshots, taken afresh by the browser tests (they need chromium: apt-get install chromium).
tour: $(STAMP) system-check
	rm -f docs/tour/*.png
	$(PY) -m pytest -q tests/browser --tour-screenshots docs/tour

bench: $(STAMP) system-check
	$(PY) -m benchmarks $(BENCH_ARGS)

# The fault campaign (docs/failure-handling.md); replay one with CHAOS_ARGS="--seed N ...".
chaos: $(STAMP) system-check
	$(PY) -m chaos $(CHAOS_ARGS)

# The failure lab (docs/patterns.md): each naive version against its fault, and the shop's against the same.
lab: $(STAMP) system-check
	$(PY) -m lab $(LAB_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (found $$($(PYTHON) --version)). Run: make PYTHON=python3.12"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.installed-*
	@touch $@

system-check: $(STAMP)
	@$(PY) -c 'import weasyprint' 2>/dev/null || { printf '$(PANGO_HINT)\n'; exit 1; }
	@$(PY) -c 'import sqlite3, sys; sys.exit(sqlite3.sqlite_version_info < (3, 35))' || \
		{ printf '$(SQLITE_HINT) (found %s)\n' "$$($(PY) -c 'import sqlite3; print(sqlite3.sqlite_version)')"; exit 1; }
	@$(PY) -c 'import ctypes.util as u, sys; sys.exit(not u.find_library("harfbuzz-subset"))' || \
		echo "Note: invoice PDFs render ~5x faster with HarfBuzz-Subset (Debian/Ubuntu: libharfbuzz-subset0)."

# Re-pin after changing dependencies in pyproject.toml.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^jobshop' > requirements.lock
	rm -rf .venv-lock build *.egg-info

clean:
	rm -rf var/test .pytest_cache .ruff_cache
