"""The Helm chart, the install manifests and the shipped runtimes, checked without a cluster.

The chart is rendered with the pinned helm that `kubeserve dev build` makes; the runtimes are read
from manifests/runtimes/, their one source. charts/generate.py keeps the copies and renderings in step.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from kubeserve.api.serving_runtime import ClusterServingRuntime
from kubeserve.cache.watches import Scope
from kubeserve.cli.run import run as run_command
from kubeserve.config import OperatorConfig
from kubeserve.devcluster import build, versions
from kubeserve.planning.templating import TemplateContext, render_container
from tests.unit.crd_schema import pruned_paths, schema

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubeserve"
RUNTIME_FILES = sorted((REPO / "manifests" / "runtimes").glob("*.yaml"))
KUBE_VERSION = ["--kube-version", versions.KUBERNETES]

# What the operator gives a runtime's templates (docs/runtime-templates.md names each value).
TEMPLATE_CONTEXT = TemplateContext(
    name="iris",
    namespace="models",
    labels={"app": "iris"},
    annotations={},
    model_dir="/mnt/models",
    model_format="sklearn",
    protocol="v2",
)

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
    "huggingface": "kserve-huggingfaceserver",
    "vllm": "vllm",
    "mlflow": "mlserver",
}
GPU_RUNTIMES = {
    "kubeserve-server",
    "triton",
    "torchserve",
    "tensorflow-serving",
    "vllm",
    "kserve-huggingfaceserver",
}


def _grants(group: str, resources: str, verbs: str) -> list[tuple[str, str, str]]:
    return [(group, resource, verb) for resource in resources.split() for verb in verbs.split()]


# (apiGroup, resource, verb) the operator cannot work without wherever it reconciles: in every namespace,
# or in each of watchNamespaces.
CHILD_VERBS = "list watch create patch delete"
RECONCILE_GRANTS = [
    *_grants("serving.kubeserve.io", "inferenceservices", "list watch"),
    *_grants("serving.kubeserve.io", "inferenceservices/status", "patch"),
    *_grants("serving.kubeserve.io", "servingruntimes", "list watch"),
    *_grants("apps", "deployments", CHILD_VERBS),
    *_grants("", "services", CHILD_VERBS),
    *_grants("autoscaling", "horizontalpodautoscalers", CHILD_VERBS),
    *_grants("gateway.networking.k8s.io", "httproutes", CHILD_VERBS),
    *_grants("networking.istio.io", "virtualservices", CHILD_VERBS),
    *_grants("keda.sh", "scaledobjects", CHILD_VERBS),
    *_grants("discovery.k8s.io", "endpointslices", CHILD_VERBS),
    *_grants("", "pods serviceaccounts", "list watch"),
    *_grants("", "events", "create"),
]
# The cluster-scoped reads it needs either way.
CLUSTER_READS = [
    *_grants("serving.kubeserve.io", "clusterservingruntimes", "list watch"),
    *_grants("apiextensions.k8s.io", "customresourcedefinitions", "list watch"),
]
# Its ClusterRole when it reconciles everywhere.
REQUIRED_GRANTS = RECONCILE_GRANTS + CLUSTER_READS
# (apiGroup, resource, verb, name) it needs in its own namespace only; "" for any name.
CONFIG_MAP, LEASE = "kubeserve-config", "kubeserve-operator"
REQUIRED_OWN_NAMESPACE_GRANTS = [
    *[("", "configmaps", verb, CONFIG_MAP) for verb in ("get", "list", "watch")],
    ("coordination.k8s.io", "leases", "create", ""),
    *[("coordination.k8s.io", "leases", verb, LEASE) for verb in ("get", "update")],
]
# Only while scale to zero is on: deleting what a removed selector left, and reading the activator's slices.
SCALE_TO_ZERO = ("--set", "config.scaleToZero.enabled=true")
SCALE_TO_ZERO_GRANTS = _grants("", "endpoints", "delete")
SCALE_TO_ZERO_OWN_NAMESPACE_GRANTS = [
    ("discovery.k8s.io", "endpointslices", verb, "") for verb in ("list", "watch")
]
OWN_ROLE, RECONCILE_ROLE = "kubeserve-operator", "kubeserve-operator-reconcile"
WATCHED = ("--set", "watchNamespaces={team-a,team-b}")
DEFAULT_EXCLUSION = "!kube-system,!kubeserve-system"


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


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind and name in (None, obj["metadata"]["name"])]
    return found


def namespace_flags(objects: list[dict[str, Any]]) -> list[str]:
    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return [arg.removeprefix("--namespace=") for arg in container["args"] if arg.startswith("--namespace=")]


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
    operator_kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    operator_kinds += ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    assert kinds == sorted(operator_kinds + ["ClusterServingRuntime"] * len(RUNTIMES))
    shipped = {obj["metadata"]["name"]: obj for obj in rendered if obj["kind"] == "ClusterServingRuntime"}
    assert shipped == {runtime["metadata"]["name"]: runtime for runtime in RUNTIMES.values()}
    namespaced = [obj for obj in rendered if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
    assert {
        obj["metadata"].get("namespace") for obj in namespaced if obj["kind"] != "ClusterServingRuntime"
    } == {"kubeserve-system"}


def test_runtimes_can_be_left_out(helm: str) -> None:
    kinds = {obj["kind"] for obj in render(helm, "--set", "runtimes.enabled=false")}
    assert "ClusterServingRuntime" not in kinds
    assert "Deployment" in kinds


# --- RBAC and the namespaces reconciled --------------------------------------------------------------


def grants(rule: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def role_grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return set().union(*(grants(rule) for rule in role["rules"]))


def cluster_grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return role_grants(one(objects, "ClusterRole", OWN_ROLE))


def own_namespace_grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {
        (*grant, name)
        for rule in one(objects, "Role", OWN_ROLE)["rules"]
        for grant in grants(rule)
        for name in rule.get("resourceNames") or [""]
    }


def reconcile_roles(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Roles of the watched namespaces, by namespace."""
    return {
        obj["metadata"]["namespace"]: obj
        for obj in objects
        if obj["kind"] == "Role" and obj["metadata"]["name"] == RECONCILE_ROLE
    }


def test_by_default_the_operator_reconciles_everywhere_but_kube_system_and_its_own_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    """The chart's flag, read by the operator's own namespace matching."""
    assert namespace_flags(rendered) == [DEFAULT_EXCLUSION]
    scope = Scope(tuple(namespace_flags(rendered)))
    assert [
        ns for ns in ("kube-system", "kubeserve-system", "models", "kube-public") if scope.wanted(ns)
    ] == [
        "models",
        "kube-public",
    ]
    assert scope.namespaces() == [None], "one cluster-wide watch, filtered: the ClusterRole grants it"
    assert reconcile_roles(rendered) == {}


def test_watch_namespaces_get_a_role_each_and_the_cluster_role_keeps_only_cluster_reads(helm: str) -> None:
    objects = render(helm, *WATCHED)
    assert namespace_flags(objects) == ["team-a", "team-b"]
    assert Scope(tuple(namespace_flags(objects))).namespaces() == ["team-a", "team-b"], "watched one by one"
    assert cluster_grants(objects) == set(CLUSTER_READS)
    roles = reconcile_roles(objects)
    assert sorted(roles) == ["team-a", "team-b"]
    assert all(role_grants(role) == set(RECONCILE_GRANTS) for role in roles.values())
    bindings = {obj["metadata"]["namespace"]: obj for obj in objects if obj["kind"] == "RoleBinding"}
    assert sorted(bindings) == ["kubeserve-system", "team-a", "team-b"]
    for watched in ("team-a", "team-b"):
        assert bindings[watched]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": RECONCILE_ROLE,
        }
        assert bindings[watched]["subjects"] == [
            {"kind": "ServiceAccount", "name": "kubeserve-operator", "namespace": "kubeserve-system"}
        ]
    assert own_namespace_grants(objects) == set(REQUIRED_OWN_NAMESPACE_GRANTS)


@pytest.mark.parametrize("refused", ["kube-system", "kubeserve-system"])
def test_watch_namespaces_may_name_kube_system_or_the_release_namespace_only_when_allowed(
    helm: str, refused: str
) -> None:
    command = [helm, "template", "kubeserve", str(CHART), "--namespace", "kubeserve-system", *KUBE_VERSION]
    result = subprocess.run(
        [*command, "--set", f"watchNamespaces={{team-a,{refused}}}"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"watchNamespaces lists {refused}" in result.stderr
    assert "set reconcileSystemNamespaces=true" in result.stderr
    allowed = render(
        helm, "--set", f"watchNamespaces={{team-a,{refused}}}", "--set", "reconcileSystemNamespaces=true"
    )
    assert namespace_flags(allowed) == ["team-a", refused]
    assert sorted(reconcile_roles(allowed)) == sorted(["team-a", refused])
    assert own_namespace_grants(allowed) == set(REQUIRED_OWN_NAMESPACE_GRANTS), (
        "beside the operator's own Role"
    )


def test_reconciling_in_system_namespaces_can_be_allowed(helm: str) -> None:
    objects = render(helm, "--set", "reconcileSystemNamespaces=true")
    assert namespace_flags(objects) == []
    assert cluster_grants(objects) == set(REQUIRED_GRANTS)


def test_rbac_grants_what_the_operator_needs(rendered: list[dict[str, Any]]) -> None:
    assert [grant for grant in REQUIRED_GRANTS if grant not in cluster_grants(rendered)] == []
    own = own_namespace_grants(rendered)
    assert [grant for grant in REQUIRED_OWN_NAMESPACE_GRANTS if grant not in own] == []


def test_rbac_grants_nothing_more(rendered: list[dict[str, Any]]) -> None:
    """Every verb granted is one the operator uses: no get (it lists and watches), no update (it applies)."""
    assert cluster_grants(rendered) == set(REQUIRED_GRANTS)
    assert own_namespace_grants(rendered) == set(REQUIRED_OWN_NAMESPACE_GRANTS)


def test_scale_to_zero_adds_its_grants_only_when_on(helm: str) -> None:
    objects = render(helm, *SCALE_TO_ZERO)
    assert cluster_grants(objects) == set(REQUIRED_GRANTS + SCALE_TO_ZERO_GRANTS)
    assert own_namespace_grants(objects) == set(
        REQUIRED_OWN_NAMESPACE_GRANTS + SCALE_TO_ZERO_OWN_NAMESPACE_GRANTS
    )


@pytest.mark.parametrize("values", [(), WATCHED], ids=["defaults", "watch-namespaces"])
def test_rbac_never_touches_secrets_or_uses_wildcards(helm: str, values: tuple[str, ...]) -> None:
    objects = render(helm, *values)
    rules = [rule for obj in objects if obj["kind"] in ("ClusterRole", "Role") for rule in obj["rules"]]
    assert len(rules) > len(one(objects, "ClusterRole")["rules"])
    for rule in rules:
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


def test_bindings_give_the_roles_to_the_operator_account(rendered: list[dict[str, Any]]) -> None:
    account = one(rendered, "ServiceAccount")["metadata"]
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(rendered, binding_kind)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": one(rendered, role_kind)["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_the_lease_name_is_a_value_the_flag_and_the_role_share(helm: str) -> None:
    objects = render(helm, "--set", "leaderElection.leaseName=models-operator")
    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--lease-name=models-operator" in container["args"]
    [named] = [
        rule
        for rule in one(objects, "Role")["rules"]
        if "leases" in rule["resources"] and rule.get("resourceNames")
    ]
    assert named["resourceNames"] == ["models-operator"]


def test_one_replica_without_leader_election(helm: str) -> None:
    objects = render(helm, "--set", "replicas=1", "--set", "leaderElection.enabled=false")
    deployment = one(objects, "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert not any(arg.startswith(("--leader-elect", "--lease-name")) for arg in container["args"])
    assert "PodDisruptionBudget" not in {obj["kind"] for obj in objects}
    assert not [grant for grant in own_namespace_grants(objects) if grant[1] == "leases"]


def test_several_replicas_need_leader_election(helm: str) -> None:
    command = [helm, "template", "kubeserve", str(CHART), *KUBE_VERSION]
    command += ["--set", "replicas=2", "--set", "leaderElection.enabled=false"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and "leaderElection.enabled" in result.stderr


# --- Deployment, metrics and configuration --------------------------------------------------------


def test_operator_deployment_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert pod["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "ghcr.io/kubeserve/operator:0.1.0"
    assert container["command"] + container["args"] == [
        "kubeserve",
        "run",
        "--http-address=0.0.0.0:8080",
        "--config-map=kubeserve-config",
        "--log-format=json",
        "--leader-elect",
        "--operator-namespace=$(POD_NAMESPACE)",
        "--lease-name=kubeserve-operator",
        f"--namespace={DEFAULT_EXCLUSION}",
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"] and "emptyDir" in pod["volumes"][0]
    assert "annotations" not in deployment["spec"]["template"]["metadata"], "no checksum: config is live"


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [
        ((), (DEFAULT_EXCLUSION,)),
        (
            (
                "--set",
                "watchNamespaces={team-a}",
                "--set",
                "replicas=1",
                "--set",
                "leaderElection.enabled=false",
            ),
            ("team-a",),
        ),
    ],
    ids=["defaults", "one-replica-one-namespace"],
)
def test_operator_accepts_the_charts_arguments(
    helm: str, values: tuple[str, ...], namespaces: tuple[str, ...]
) -> None:
    """The flags parse with `kubeserve run`'s own parser (without running it), as the pod would pass them."""
    [container] = one(render(helm, *values), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["command"] + container["args"][:1] == ["kubeserve", "run"]
    args = [arg.replace("$(POD_NAMESPACE)", "kubeserve-system") for arg in container["args"][1:]]
    with run_command.make_context("run", list(args)) as context:
        assert context.params["http_address"] == "0.0.0.0:8080"
        assert context.params["config_map"] == CONFIG_MAP
        assert context.params["leader_elect"] is ("--leader-elect" in args)
        assert context.params["namespaces"] == namespaces


def test_replicas_know_their_namespace_and_name_from_the_downward_api(rendered: list[dict[str, Any]]) -> None:
    [container] = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}


def test_probes_and_metrics_service_use_the_http_address(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    assert (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]) == (
        {"path": "/healthz", "port": "http"},
        {"path": "/readyz", "port": "http"},
    )
    service = one(rendered, "Service")
    assert service["metadata"]["name"] == "kubeserve-operator-metrics"
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_service_monitor_is_optional(helm: str, rendered: list[dict[str, Any]]) -> None:
    assert "ServiceMonitor" not in {obj["kind"] for obj in rendered}
    objects = render(
        helm,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= one(objects, "Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics", "interval": "30s"}]


def test_replicas_are_spread_and_kept_through_disruptions(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (
        spread["whenUnsatisfiable"] == "ScheduleAnyway" and spread["topologyKey"] == "kubernetes.io/hostname"
    )
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert budget == {"minAvailable": 1, "selector": deployment["spec"]["selector"]}


def test_operator_follows_the_configmap_its_role_names(rendered: list[dict[str, Any]]) -> None:
    [container] = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    config_map = one(rendered, "ConfigMap")
    assert f"--config-map={config_map['metadata']['name']}" in container["args"]
    assert (config_map["metadata"]["name"], list(config_map["data"])) == (CONFIG_MAP, ["config.yaml"])
    [rule] = [rule for rule in one(rendered, "Role")["rules"] if "configmaps" in rule["resources"]]
    assert rule["resourceNames"] == [CONFIG_MAP]


def test_config_is_the_operators_own_model(rendered: list[dict[str, Any]]) -> None:
    data = yaml.safe_load(one(rendered, "ConfigMap")["data"]["config.yaml"])
    config = OperatorConfig.model_validate(data)
    assert data == config.model_dump(mode="json", by_alias=True, exclude_none=True), (
        "the chart says the defaults"
    )
    assert set(config.accelerator_classes) == {"nvidia-a100", "nvidia-h100", "amd-mi300"}
    for accelerator in config.accelerator_classes.values():
        assert [t.key for t in accelerator.tolerations] == [accelerator.resource_name]


def test_config_changes_do_not_restart_the_operator(helm: str, rendered: list[dict[str, Any]]) -> None:
    """The operator follows the ConfigMap live, so the pod template must not change with it."""
    changed = render(helm, "--set", "config.ingress.domain=models.example.org")
    assert one(changed, "ConfigMap") != one(rendered, "ConfigMap")
    assert one(changed, "Deployment") == one(rendered, "Deployment")


# --- values.schema.json and the configuration table -----------------------------------------------


def test_values_schema_config_is_the_operators_model() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    model = OperatorConfig.model_json_schema(by_alias=True, mode="validation")
    config = schema["properties"]["config"]
    assert set(config["properties"]) == set(model["properties"])
    assert config["additionalProperties"] is False
    assert set(schema["$defs"]) == set(model["$defs"])


def test_values_schema_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    for key, value in values.items():
        sub = schema["properties"][key]
        if isinstance(value, dict) and "properties" in sub:
            assert set(value) == set(sub["properties"]), key


@pytest.mark.parametrize(
    ("option", "complaint"),
    [
        ("logFormat=xml", "/logFormat"),
        ("replicas=0", "/replicas"),
        ("config.traffic.backend=nginx", "/config/traffic/backend"),
        ("config.ingres.domain=typo.example", "ingres"),
        ("leaderElection.leaseName=Not_A_Name", "/leaderElection/leaseName"),
        ("watchNamespaces={team-*}", "/watchNamespaces/0"),
        ("watchNamespaces={!kube-system}", "/watchNamespaces/0"),
        ("unknown=1", "unknown"),
    ],
)
def test_values_schema_refuses_bad_values(helm: str, option: str, complaint: str) -> None:
    command = [helm, "template", "kubeserve", str(CHART), *KUBE_VERSION, "--set", option]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_readme_configuration_table_lists_every_value() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index(generator.TABLE_BEGIN) : readme.index(generator.TABLE_END)]
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines()[3:]}
    assert {"replicas", "leaderElection.leaseName", "logFormat", "metrics.serviceMonitor.enabled"} <= rows
    assert {"config.ingress.domain", "config.traffic.backend", "config.storageInitializer.image"} <= rows
    assert "config.acceleratorClasses.<name>.resourceName" in rows
    assert all(line.rstrip().endswith("|") and line.split("|")[4].strip() for line in table.splitlines()[3:])


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
    for container in RUNTIMES[path.stem]["spec"]["containers"]:
        rendered = render_container(container, TEMPLATE_CONTEXT)
        texts = rendered.get("args", []) + [e["value"] for e in rendered.get("env", []) if "value" in e]
        assert not any("{" in text for text in texts), texts


def test_kubeserve_server_args_fill_name_dir_and_format() -> None:
    filled = render_container(RUNTIMES["kubeserve-server"]["spec"]["containers"][0], TEMPLATE_CONTEXT)["args"]
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
    """Chart CRDs and runtimes are copies; manifests/default/ is rendered from the chart;
    values.schema.json is made from charts/values.schema.yaml and the operator's model, and the
    README's configuration table from values.schema.json."""
    stale = generator.stale(generator.expected(helm))
    assert not [str(path.relative_to(REPO)) for path in stale], "run: python charts/generate.py"


def test_every_crd_is_in_the_chart_and_the_plain_install() -> None:
    top = sorted(path.name for path in (REPO / "crds").glob("serving.kubeserve.io_*.yaml"))
    assert top, "crds/ is empty: run make crds"
    assert sorted(path.name for path in (CHART / "crds").glob("*.yaml")) == top
    copies = REPO / "manifests" / "default" / "crds"
    assert sorted(path.name for path in copies.glob("*.yaml") if path.name != "kustomization.yaml") == top


def canonical(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(obj, sort_keys=True) for obj in objects)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not on PATH")
def test_kustomize_base_installs_what_the_chart_does_by_default(helm: str) -> None:
    """`kubectl apply -k manifests/default` = the chart's defaults (CRDs included) and its namespace."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "manifests" / "default")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kustomized = [doc for doc in yaml.safe_load_all(built) if doc]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeserve-system"}}
    assert canonical(kustomized) == canonical([*render(helm, "--include-crds"), namespace])
