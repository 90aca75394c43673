"""The Helm chart, the install manifests and the shipped runtimes, checked without a cluster.

The chart is rendered with the pinned helm that `kubeserve dev build` makes; the runtimes are read
from manifests/runtimes/, their one source. charts/generate.py keeps the copies and renderings in step.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment

from kubeserve.api.serving_runtime import ClusterServingRuntime
from kubeserve.devcluster import build, versions
from tests.unit.crd_schema import pruned_paths, schema

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubeserve"
RUNTIME_FILES = sorted((REPO / "manifests" / "runtimes").glob("*.yaml"))
KUBE_VERSION = ["--kube-version", versions.KUBERNETES]

# What the operator gives a runtime's templates (see the brief for issue 3).
TEMPLATE_VARIABLES = {
    "name": "iris",
    "namespace": "models",
    "labels": {"app": "iris"},
    "annotations": {},
    "model_dir": "/mnt/models",
    "model_format": "sklearn",
    "protocol": "v2",
}

# Which runtime auto-selection picks per format, and the runtimes that must declare a GPU image.
DEFAULT_RUNTIME = {
    "sklearn": "kubeserve-server",
    "xgboost": "kubeserve-server",
    "lightgbm": "kubeserve-server",
    "onnx": "kubeserve-server",
    "tensorflow": "tensorflow-serving",
    "pytorch": "torchserve",
    "tensorrt": "triton",
    "triton": "triton",
    "huggingface": "vllm",
    "mlflow": "mlserver",
}
GPU_RUNTIMES = {"kubeserve-server", "triton", "torchserve", "tensorflow-serving", "vllm"}


def _grants(group: str, resources: str, verbs: str) -> list[tuple[str, str, str]]:
    return [(group, resource, verb) for resource in resources.split() for verb in verbs.split()]


# (apiGroup, resource, verb) the operator cannot work without.
CHILD_VERBS = "create get list watch patch delete"
REQUIRED_GRANTS = [
    *_grants("serving.kubeserve.io", "inferenceservices inferenceservices/status", "get list watch patch"),
    *_grants("serving.kubeserve.io", "servingruntimes clusterservingruntimes", "get list watch"),
    *_grants("apps", "deployments", CHILD_VERBS),
    *_grants("", "services", CHILD_VERBS),
    *_grants("autoscaling", "horizontalpodautoscalers", CHILD_VERBS),
    *_grants("", "pods serviceaccounts", "get list watch"),
    *_grants("", "events", "create patch"),
    *_grants("gateway.networking.k8s.io", "httproutes", f"{CHILD_VERBS} update"),
    *_grants("networking.istio.io", "virtualservices", f"{CHILD_VERBS} update"),
    *_grants("apiextensions.k8s.io", "customresourcedefinitions", "get list watch"),
    *_grants("", "namespaces", "list watch"),
]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_generate", REPO / "charts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


@pytest.fixture(scope="module")
def helm() -> str:
    path = build.binary_path("helm")
    assert path.exists(), f"{path} is missing: run `kubeserve dev build`"
    return str(path)


def render(helm: str, *options: str) -> list[dict[str, Any]]:
    """The chart's objects as `helm template` renders them into kubeserve-system."""
    command = [helm, "template", "kubeserve", str(CHART), "--namespace", "kubeserve-system", *KUBE_VERSION]
    output = subprocess.run([*command, *options], check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def rendered(helm: str) -> list[dict[str, Any]]:
    return render(helm)


def load_runtime(path: Path) -> dict[str, Any]:
    [runtime] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert isinstance(runtime, dict)
    return runtime


RUNTIMES = {path.stem: load_runtime(path) for path in RUNTIME_FILES}


def test_helm_lint_passes(helm: str) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *KUBE_VERSION], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_the_operator_and_the_runtimes(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(obj["kind"] for obj in rendered)
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment"]
        + ["ClusterServingRuntime"] * len(RUNTIMES)
    )
    shipped = {obj["metadata"]["name"]: obj for obj in rendered if obj["kind"] == "ClusterServingRuntime"}
    assert shipped == {runtime["metadata"]["name"]: runtime for runtime in RUNTIMES.values()}


def test_runtimes_can_be_left_out(helm: str) -> None:
    kinds = {obj["kind"] for obj in render(helm, "--set", "runtimes.enabled=false")}
    assert "ClusterServingRuntime" not in kinds
    assert "Deployment" in kinds


def test_watch_namespaces_become_operator_flags(helm: str) -> None:
    objects = render(helm, "--set", "watchNamespaces={team-a,team-b}")
    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--namespace=team-a", "--namespace=team-b"]


# --- RBAC -----------------------------------------------------------------------------------------


def grants(rule: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_grants_what_the_operator_needs(rendered: list[dict[str, Any]]) -> None:
    granted = set().union(*(grants(rule) for rule in one(rendered, "ClusterRole")["rules"]))
    missing = [grant for grant in REQUIRED_GRANTS if grant not in granted]
    assert not missing


def test_rbac_never_touches_secrets_or_uses_wildcards(rendered: list[dict[str, Any]]) -> None:
    for rule in one(rendered, "ClusterRole")["rules"]:
        assert "secrets" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "kopf.dev" not in rule["apiGroups"], "standalone kopf needs no peering objects"


def test_every_rbac_rule_says_who_needs_it() -> None:
    """Each rule is preceded by a comment block that opens with Framework: or Application:."""
    lines = (CHART / "templates" / "rbac.yaml").read_text().splitlines()
    rule_starts = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert rule_starts
    for start in rule_starts:
        first = start
        while lines[first - 1].strip().startswith("#"):
            first -= 1
        assert re.match(r"\s*# (Framework|Application): ", lines[first]), (
            f"rbac.yaml:{start + 1} is unexplained"
        )


def test_binding_gives_the_role_to_the_operator_account(rendered: list[dict[str, Any]]) -> None:
    binding = one(rendered, "ClusterRoleBinding")
    account = one(rendered, "ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == one(rendered, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


# --- Deployment and configuration -----------------------------------------------------------------


def test_operator_deployment_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "ghcr.io/kubeserve/operator:0.1.0"
    assert container["command"] + container["args"] == [
        "kubeserve",
        "run",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    probe = container["livenessProbe"]["httpGet"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}[probe["port"]]
    assert (probe["path"], port) == ("/healthz", 8080)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_operator_reads_the_configmap_where_the_env_points(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_map = one(rendered, "ConfigMap")
    [(volume_name, _)] = [(n, v) for n, v in volumes.items() if "configMap" in v]
    assert volumes[volume_name]["configMap"]["name"] == config_map["metadata"]["name"] == "kubeserve-config"
    assert env["KUBESERVE_CONFIG"] == f"{mount[volume_name]}/config.yaml" == "/etc/kubeserve/config.yaml"
    assert list(config_map["data"]) == ["config.yaml"]


def test_config_holds_the_documented_keys(rendered: list[dict[str, Any]]) -> None:
    config = yaml.safe_load(one(rendered, "ConfigMap")["data"]["config.yaml"])
    assert set(config) == {"ingress", "traffic", "storageInitializer", "acceleratorClasses"}
    assert config["traffic"]["backend"] in {"auto", "gateway", "istio", "service"}
    assert set(config["traffic"]["gateway"]) == {"namespace", "name"}
    assert config["storageInitializer"]["image"] == "ghcr.io/kubeserve/storage-initializer:0.1.0"
    classes = config["acceleratorClasses"]
    assert set(classes) == {"nvidia-a100", "nvidia-h100", "amd-mi300"}
    for accelerator in classes.values():
        assert set(accelerator) == {"resourceName", "nodeSelector", "tolerations"}
        assert [t["key"] for t in accelerator["tolerations"]] == [accelerator["resourceName"]]
    readme = (REPO / "manifests" / "operator" / "README.md").read_text()
    documented = ["ingress.domain", "traffic.backend", "traffic.gateway.namespace", "traffic.gateway.name"]
    documented += ["storageInitializer.image", "acceleratorClasses.<class>.resourceName"]
    assert all(f"`{key}`" in readme for key in documented)


def test_config_changes_roll_the_operator(helm: str, rendered: list[dict[str, Any]]) -> None:
    changed = render(helm, "--set", "config.ingress.domain=models.example.org")
    checksum = [
        one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"] for objs in (rendered, changed)
    ]
    assert checksum[0]["checksum/config"] != checksum[1]["checksum/config"]


# --- Shipped runtimes -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.stem)
def test_runtime_is_a_complete_cluster_serving_runtime(path: Path) -> None:
    runtime = RUNTIMES[path.stem]
    assert runtime["apiVersion"] == "serving.kubeserve.io/v1beta1"
    assert runtime["kind"] == "ClusterServingRuntime"
    assert runtime["metadata"]["name"] == path.stem
    spec = ClusterServingRuntime.model_validate(runtime).spec
    assert spec.protocol_versions
    assert spec.supported_model_formats
    for model_format in spec.supported_model_formats:
        assert model_format.auto_select is not None and model_format.priority is not None, model_format
    server = spec.containers[0]
    assert server.name == "kserve-container"
    assert (
        server.image
        and re.fullmatch(r"[\w./-]+:[\w.-]+", server.image)
        and not server.image.endswith(":latest")
    )
    assert server.ports and server.resources and (server.args or server.env)


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.stem)
def test_runtime_has_only_fields_the_crd_keeps(path: Path) -> None:
    assert pruned_paths(RUNTIMES[path.stem], schema("ClusterServingRuntime")) == []


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.stem)
def test_runtime_templates_render_with_the_operator_variables(path: Path) -> None:
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    for container in RUNTIMES[path.stem]["spec"]["containers"]:
        texts = container.get("args", []) + [e["value"] for e in container.get("env", []) if "value" in e]
        for text in texts:
            rendered = environment.from_string(text).render(TEMPLATE_VARIABLES)
            assert "{" not in rendered, (text, rendered)


def test_kubeserve_server_args_fill_name_dir_and_format() -> None:
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    args = RUNTIMES["kubeserve-server"]["spec"]["containers"][0]["args"]
    filled = [environment.from_string(arg).render(TEMPLATE_VARIABLES) for arg in args]
    assert filled[:3] == ["--model_name=iris", "--model_dir=/mnt/models", "--model_format=sklearn"]
    assert "--http_port=8080" in filled


def test_priorities_are_distinct_per_format() -> None:
    by_format: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name, runtime in RUNTIMES.items():
        for model_format in runtime["spec"]["supportedModelFormats"]:
            by_format[model_format["name"]].append((model_format["priority"], name))
    for model_format, ranked in by_format.items():
        priorities = [priority for priority, _ in ranked]
        assert len(set(priorities)) == len(priorities), f"{model_format}: {sorted(ranked)}"


def test_auto_selection_picks_the_intended_runtime_per_format() -> None:
    """Highest priority among autoSelect entries, as the operator ranks cluster runtimes."""
    winners: dict[str, tuple[int, str]] = {}
    for name, runtime in RUNTIMES.items():
        for model_format in runtime["spec"]["supportedModelFormats"]:
            if model_format["autoSelect"]:
                candidate = (model_format["priority"], name)
                winners[model_format["name"]] = max(winners.get(model_format["name"], candidate), candidate)
    assert {fmt: name for fmt, (_, name) in winners.items()} == DEFAULT_RUNTIME


def test_gpu_runtimes_declare_accelerator_images() -> None:
    declared = {name for name, runtime in RUNTIMES.items() if runtime["spec"].get("acceleratorImages")}
    assert declared == GPU_RUNTIMES
    for name in declared:
        assert set(RUNTIMES[name]["spec"]["acceleratorImages"]) == {"nvidia.com/gpu"}


# --- One source each ------------------------------------------------------------------------------


def test_generated_files_are_in_step_with_their_sources(helm: str) -> None:
    """Chart CRDs and runtimes are copies, manifests/operator/*.yaml are chart renderings."""
    stale = generator.stale(generator.expected(helm))
    assert not [str(path.relative_to(REPO)) for path in stale], "run: python charts/generate.py"


def test_every_crd_is_in_the_chart() -> None:
    top = sorted(path.name for path in (REPO / "crds").glob("serving.kubeserve.io_*.yaml"))
    assert top, "crds/ is empty: run make crds"
    assert sorted(path.name for path in (CHART / "crds").glob("*.yaml")) == top
