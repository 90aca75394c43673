# Kubeserve developer targets. `make dev` once, then `make cluster` and `make run`, and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := dev,operator,server,activator,sklearn,xgboost,lightgbm,onnx,storage

.PHONY: dev build cluster cluster-down run test test-main test-unit test-e2e test-node lint crds

$(BIN)/kubeserve: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

## Set up: the virtualenv with every extra, and the control-plane binaries (cached outside the clone).
dev: $(BIN)/kubeserve build

## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok once.
build: $(BIN)/kubeserve
	$(BIN)/kubeserve dev build

## Start the local control plane with kwok CPU and GPU nodes.
cluster: $(BIN)/kubeserve
	$(BIN)/kubeserve dev up

cluster-down: $(BIN)/kubeserve
	$(BIN)/kubeserve dev down

## The main job: the local control plane (started if needed), Kubeserve's CRDs and runtimes, the operator.
run: $(BIN)/kubeserve build
	$(BIN)/kubeserve dev up --reuse --real-node=auto
	kubectl --kubeconfig $$($(BIN)/kubeserve dev kubeconfig) apply --server-side --force-conflicts -f crds/
	kubectl --kubeconfig $$($(BIN)/kubeserve dev kubeconfig) wait --for condition=Established \
		--timeout 60s -f crds/
	kubectl --kubeconfig $$($(BIN)/kubeserve dev kubeconfig) apply --server-side --force-conflicts \
		-f manifests/runtimes/
	KUBECONFIG=$$($(BIN)/kubeserve dev kubeconfig) $(BIN)/kubeserve run

## Regenerate the CRD YAML in crds/ from the API models, and the chart's copies of it.
crds: $(BIN)/kubeserve
	$(BIN)/python -m kubeserve.api.crdgen crds
	$(BIN)/python charts/generate.py

## Every test, in three pytest sessions: the main one (unit, control plane, server, storage, images; it
## starts its own control plane unless KUBECONFIG is set), the kind suite (its own cluster; skips
## without Docker) and the real-node suite (its own control plane with a real node, the images built
## here; skips where the machine cannot host a node). Every session runs even when one fails, so one
## failure hides no other; the target fails at the end, naming the sessions that failed.
test: $(BIN)/kubeserve build
	@failed=""; \
	$(MAKE) --no-print-directory test-main || failed="$$failed test-main"; \
	$(MAKE) --no-print-directory test-e2e || failed="$$failed test-e2e"; \
	$(MAKE) --no-print-directory test-node || failed="$$failed test-node"; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed"; exit 1; fi

## The main session: every suite but the kind and real-node ones, which bring clusters of their own.
test-main: $(BIN)/kubeserve build
	$(BIN)/pytest tests --ignore=tests/e2e --ignore=tests/node

test-node: $(BIN)/kubeserve build
	$(BIN)/pytest tests/node

test-e2e: $(BIN)/kubeserve
	$(BIN)/pytest tests/e2e

test-unit: $(BIN)/kubeserve
	$(BIN)/pytest tests/unit

lint: $(BIN)/kubeserve
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
