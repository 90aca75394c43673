# Kubeserve developer targets. `make dev` once, then `make cluster` and `make run`, and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := dev,operator,server,sklearn,xgboost,lightgbm,onnx,storage

.PHONY: dev build cluster cluster-down run test test-unit test-e2e test-node lint crds

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

## Every test: unit, real control plane, runtime images; starts its own control plane unless KUBECONFIG
## is set. The kind suite runs first, in a session of its own (it brings its own cluster), and skips
## without Docker. The real-node suite runs last, in a session of its own too (its own control plane
## with a real node, the images built here); it skips where the machine cannot host a node.
test: $(BIN)/kubeserve build
	$(BIN)/pytest tests/e2e
	$(BIN)/pytest tests --ignore=tests/e2e --ignore=tests/node
	$(BIN)/pytest tests/node

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
