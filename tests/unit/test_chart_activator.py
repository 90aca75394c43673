"""The chart's activator option (scale to zero), checked without a cluster: what it installs when
`config.scaleToZero.enabled` is on, that the operator finds it where its configuration says, that its
RBAC is what the activator's code calls, and that the dev cluster builds the image the chart runs.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from kubeserve.config import parse_config
from kubeserve.devcluster import images
from kubeserve_activator.__main__ import parse_args
from kubeserve_activator.config import ActivatorConfig
from tests.unit.test_chart import CHART, KUBE_VERSION, REPO, grants, helm, one, render

__all__ = ["helm"]  # the fixture, shared with test_chart

ON = ("--set", "config.scaleToZero.enabled=true")
ACTIVATOR = {"app.kubernetes.io/name": "kubeserve", "app.kubernetes.io/component": "activator"}
SOURCES = REPO / "runtime-images" / "python" / "kubeserve_activator"


def activator_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels = ACTIVATOR.items()
    return [obj for obj in objects if labels <= obj["metadata"].get("labels", {}).items()]


def container(objects: list[dict[str, Any]], name: str = "kubeserve-activator") -> dict[str, Any]:
    [found] = one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.fixture(scope="module")
def installed(helm: str) -> list[dict[str, Any]]:
    return render(helm, *ON)


def test_off_by_default_it_installs_nothing(helm: str) -> None:
    assert activator_objects(render(helm)) == []


def test_on_it_installs_a_deployment_a_service_an_account_and_cluster_rbac(
    installed: list[dict[str, Any]],
) -> None:
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in activator_objects(installed))
    assert kinds == [
        (kind, "kubeserve-activator")
        for kind in ("ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount")
    ]
    deployment = one(installed, "Deployment", "kubeserve-activator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"] == ACTIVATOR
    assert one(installed, "Service", "kubeserve-activator")["spec"]["selector"] == ACTIVATOR
    operator = one(installed, "Deployment", "kubeserve-operator")["spec"]["selector"]["matchLabels"]
    assert not operator.items() <= ACTIVATOR.items(), "the operator's selectors must not take its pods"


def test_the_operator_routes_to_the_service_the_chart_installs(helm: str) -> None:
    """The Service is where the operator's configuration (the chart's ConfigMap) says, with the port named
    `http` that the routing slice maps every port to, on the activator's proxy port."""
    for name in ("kubeserve-activator", "wake-up"):
        objects = render(helm, *ON, "--set", f"config.scaleToZero.activator.name={name}")
        config = parse_config(one(objects, "ConfigMap")["data"]["config.yaml"])
        assert config.scale_to_zero.activator_service("kubeserve-system") == ("kubeserve-system", name)
        service = one(objects, "Service", name)
        assert service["metadata"]["namespace"] == "kubeserve-system"
        [http] = [port for port in service["spec"]["ports"] if port["name"] == "http"]
        ports = {port["name"]: port["containerPort"] for port in container(objects, name)["ports"]}
        assert ports[http["targetPort"]] == ActivatorConfig().port
        assert one(objects, "Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_another_activator_namespace_is_refused_naming_the_value(helm: str) -> None:
    elsewhere = ("--set", "config.scaleToZero.activator.namespace=edge")
    command = [helm, "template", "kubeserve", str(CHART), "--namespace", "kubeserve-system", *KUBE_VERSION]
    result = subprocess.run([*command, *ON, *elsewhere], capture_output=True, text=True)
    assert result.returncode != 0
    assert "config.scaleToZero.activator.namespace is edge" in result.stderr, result.stderr
    same = render(helm, *ON, "--set", "config.scaleToZero.activator.namespace=kubeserve-system")
    assert one(same, "Service", "kubeserve-activator")


def ports_of(objects: list[dict[str, Any]]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container(objects)["ports"]}


def test_its_arguments_parse_with_the_activators_own_parser(helm: str) -> None:
    objects = render(
        helm, *ON, "--set", "activator.holdSeconds=7", "--set", "activator.scrapeIntervalSeconds=4"
    )
    args = container(objects)["args"]
    config, _ = parse_args(args)
    assert (config.port, config.admin_port, config.hold_seconds) == (8080, 9090, 7)
    assert config.scrape_interval_seconds == 4
    service = one(objects, "Service", "kubeserve-activator")
    targets = {port["name"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert (targets["http"], targets["grpc"]) == ("http", "grpc"), "the names the operator routes by"
    assert (ports_of(objects)["http"], ports_of(objects)["grpc"]) == (config.port, config.grpc_port)
    probes = {probe: container(objects)[probe]["httpGet"] for probe in ("livenessProbe", "readinessProbe")}
    assert {ports_of(objects)[probe["port"]] for probe in probes.values()} == {config.admin_port}
    assert (probes["livenessProbe"]["path"], probes["readinessProbe"]["path"]) == ("/healthz", "/readyz")


def test_its_pod_is_locked_down_with_resources_as_values(installed: list[dict[str, Any]]) -> None:
    pod = one(installed, "Deployment", "kubeserve-activator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(installed)["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())["activator"]
    assert container(installed)["resources"] == values["resources"]


def test_its_image_sits_beside_the_operators_and_is_the_one_the_dev_cluster_builds(helm: str) -> None:
    [built] = [image.reference for image in images.all_images() if image.name == "activator"]
    assert container(render(helm, *ON))["image"] == built == "ghcr.io/kubeserve/activator:0.1.0"
    moved = render(helm, *ON, "--set", "image.repository=registry.test/team/operator,image.tag=1.2")
    assert container(moved)["image"] == "registry.test/team/activator:0.1.0"
    own = render(helm, *ON, "--set", "activator.image.repository=registry.test/a,activator.image.tag=v9")
    assert container(own)["image"] == "registry.test/a:v9"
    assert images.activator_repository("registry.test/team/operator", "") == "registry.test/team/activator"


@pytest.mark.parametrize(
    ("option", "complaint"),
    [
        ("activator.holdSeconds=0", "/activator/holdSeconds"),
        ("activator.scrapeIntervalSeconds=0", "/activator/scrapeIntervalSeconds"),
        ("activator.replicas=0", "/activator/replicas"),
        ("activator.image.pullPolicy=Sometimes", "/activator/image/pullPolicy"),
        ("activator.holdSecs=5", "holdSecs"),
    ],
)
def test_bad_values_are_refused_naming_them(helm: str, option: str, complaint: str) -> None:
    command = [helm, "template", "kubeserve", str(CHART), *KUBE_VERSION, *ON, "--set", option]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


# --- RBAC: what the activator's code calls, no more ---------------------------------------------------

API_PATH = re.compile(r'"/apis?/(?:(?P<group>[a-z0-9.-]+)/)?v1/(?:namespaces/\{[^}]+\}/)?(?P<rest>[^"]+)"')


def called_resources() -> set[tuple[str, str]]:
    """(apiGroup, resource[/subresource]) of every API path the activator's sources write out."""
    called = set()
    for source in SOURCES.glob("*.py"):
        for found in API_PATH.finditer(source.read_text()):
            parts = found["rest"].split("/")
            resource = parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"
            called.add((found["group"] or "", resource))
    return called


def test_the_paths_found_in_the_sources_are_the_expected_ones() -> None:
    """The scan itself must see the three kinds of call the activator is known to make."""
    assert {
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
        ("apps", "deployments/scale"),
    } <= called_resources()


def test_cluster_role_grants_what_the_activator_calls_and_nothing_more(
    installed: list[dict[str, Any]],
) -> None:
    rules = one(installed, "ClusterRole", "kubeserve-activator")["rules"]
    granted = set().union(*(grants(rule) for rule in rules))
    assert {(group, resource) for group, resource, _ in granted} == called_resources()
    # Watched kinds are listed and watched; the scale subresource is read and patched (the guard).
    for _, resource, verb in granted:
        assert verb in (("get", "patch") if resource.endswith("/scale") else ("list", "watch")), verb
    for rule in rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "secrets" not in rule["resources"], rule


def test_it_adds_no_rule_to_the_operators_namespace(installed: list[dict[str, Any]]) -> None:
    """tests/cluster/test_install.py's rule: every operator-namespace Role rule is limited by name; the
    activator needs none there (a ClusterRole, bound to its own account)."""
    assert [obj for obj in activator_objects(installed) if obj["kind"] in ("Role", "RoleBinding")] == []
    binding = one(installed, "ClusterRoleBinding", "kubeserve-activator")
    assert binding["roleRef"]["name"] == "kubeserve-activator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeserve-activator", "namespace": "kubeserve-system"}
    ]
