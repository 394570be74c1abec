# binlog-shipper: `make demo` runs the product end to end; `make test` runs the suite.
# Both work on a fresh Debian 12 machine as root: they create .venv, install the
# package with everything the tests need, and install Debian's MariaDB packages
# when mariadbd, mariadb-binlog or mariabackup is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= $(CURDIR)/demo-state
PYTEST_ARGS ?=

.PHONY: all demo test lint system-deps venv bench clean

all: test

system-deps:
	@# Install only the Debian packages whose tools are missing, and never upgrade
	@# anything already on the machine (openssl, libssl, a running MariaDB: not ours).
	@pkgs=""; \
	for pair in mariadbd:mariadb-server mariadb-install-db:mariadb-server \
	            mariadb-binlog:mariadb-client mariadb:mariadb-client mariadb-dump:mariadb-client \
	            mariabackup:mariadb-backup zstd:zstd openssl:openssl; do \
	  t=$${pair%%:*}; p=$${pair#*:}; \
	  command -v $$t >/dev/null 2>&1 || [ -x /usr/sbin/$$t ] || case " $$pkgs " in *" $$p "*) ;; *) pkgs="$$pkgs $$p";; esac; \
	done; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" != "0" ]; then \
	    echo "error: missing Debian packages:$$pkgs. Run as root, or install them yourself:" >&2; \
	    echo "  sudo apt-get install --no-upgrade$$pkgs" >&2; \
	    exit 1; \
	  fi; \
	  echo ">> installing missing Debian packages:$$pkgs (nothing installed is upgraded)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade \
	    --no-install-recommends $$pkgs >/dev/null; \
	fi

# constraints.txt: the dependency versions the suite last passed with (pyproject.toml
# keeps the ranges); a new upstream release then cannot break the build unseen
$(STAMP): pyproject.toml constraints.txt
	@echo ">> creating $(VENV) and installing binlog-shipper with its test dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[aws,gcp,functions,test]'
	@touch $@

venv: $(STAMP)

demo: system-deps $(STAMP)
	$(BIN)/python -m shipper.demo --dir "$(DEMO_DIR)"

lint: $(STAMP)
	$(BIN)/ruff check shipper tests bench
	$(BIN)/mypy

test: system-deps $(STAMP) lint infra-check
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: system-deps $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# checkov in its own venv: it pins its own boto3 and its own hcl2 fork, which
# must never meet the project's. No Terraform binary or provider can be
# downloaded here, so checkov plus tests/infra are the gate for infra/terraform
# and samplerepo (see infra/terraform/README.md).
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp

.PHONY: infra-check

$(CHECKOV_STAMP):
	@echo ">> creating $(CHECKOV_VENV) with checkov $(CHECKOV_VERSION)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)
	@touch $@

infra-check: $(CHECKOV_STAMP)
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --config-file infra/terraform/checkov.yaml \
	  -d infra/terraform -d samplerepo

# The function packages: dist/functions/aws-lambda.zip (for lambda_runtime python3.12 on
# x86_64 by default; FUNCTIONS_ARGS="--python-version 3.13 --platform manylinux2014_aarch64"
# for others) and dist/functions/gcp/ (see functions/build.py).
FUNCTIONS_ARGS ?=
.PHONY: functions

functions: $(STAMP)
	$(BIN)/python functions/build.py $(FUNCTIONS_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
