# The two commands a newcomer needs: `make run` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run serve test test-unit test-image image lint bench services-build venv clean

$(STAMP): pyproject.toml constraints.txt
	platform/ensure-packages.sh libldap2-dev libsasl2-dev gcc make
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

## make run — the service on embedded defaults, with the local Kubernetes control plane
run: venv
	platform/run.sh

## make serve — the same, with the production web server (gunicorn, config/gunicorn.py; static files collected)
serve: venv
	LEASEHOLD_RUN_SERVER=gunicorn platform/run.sh

## make test — start PostgreSQL, Redis, OpenLDAP and two Kubernetes control planes, run every test, stop them all
# (k8s-b, the second control plane, is for the multi-cluster tests; it adds about 7–13 s to the start-up)
test: venv
	platform/ensure-packages.sh chromium prometheus
	command -v kubectl >/dev/null || platform/ensure-packages.sh kubernetes-client
	SECRET_KEY=test-only-not-a-secret platform/with-services.sh postgres redis ldap k8s k8s-b -- \
		$(PY) -m pytest $(PYTEST_ARGS)

## make test-unit — every test not marked `integration` (tests/conftest.py): SQLite, no services started
test-unit: venv
	env -u DATABASE_URL -u REDIS_URL -u LDAP_URI -u KUBECONFIG SECRET_KEY=test-only-not-a-secret \
		$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

## make image — build the container image (Containerfile) with buildah, from a base made offline
IMAGE ?= localhost/leasehold:dev
image:
	platform/image/build.sh $(IMAGE)

## make test-image — build the image, then run it: check --deploy, gunicorn answering /healthz (minutes)
test-image: venv image
	command -v kubectl >/dev/null || platform/ensure-packages.sh kubernetes-client
	LEASEHOLD_IMAGE=$(IMAGE) SECRET_KEY=test-only-not-a-secret $(PY) -m pytest tests/image $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=lint-only-not-a-secret $(VENV)/bin/mypy config requests_app approvals provisioning leases accounts
	$(VENV)/bin/bandit -q -c pyproject.toml -ll -r config requests_app approvals provisioning leases accounts

## make bench — seed 1k/10k/100k requests on the real services; print speed and memory figures (bench/README.md)
BENCH_ARGS ?=
bench: venv
	SECRET_KEY=bench-only-not-a-secret platform/with-services.sh postgres redis ldap k8s -- \
		$(PY) -m bench $(BENCH_ARGS)

## build the local Kubernetes control plane binaries now (make run/test do it on first use)
services-build:
	platform/k8s/build.sh

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
