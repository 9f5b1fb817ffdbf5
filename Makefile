# Each target sets up its own virtual environment when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench package clean

# Lambda's architecture for `make package`: x86_64 or arm64.
ARCH ?= x86_64

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m chalicelib.devserver

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

# build/lambda/deployment.zip and sam.json for the python3.12 runtime,
# whatever Python runs make; fails when the zip would not run on Lambda.
package: $(STAMP)
	$(PY) -m lambda_package --out build/lambda --arch $(ARCH)

clean:
	rm -rf $(VENV) build
