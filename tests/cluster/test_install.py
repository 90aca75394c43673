"""The chart on a real control plane: it applies, installs, upgrades, and its RBAC is enough and no more.

The chart goes into a fresh namespace with `runtimes.enabled=false`: the shipped
ClusterServingRuntimes are cluster-wide and would change runtime selection for
the other tests of the session, so they are sent as server-side apply dry runs
with strict field validation instead, which the API server checks in full
without keeping them. The operator pods never run their image (kwok marks pods
Running), which is enough to prove the Deployment, its ServiceAccount and its
ConfigMap fit together; the operator itself is run as a subprocess with the
chart's ServiceAccount token, so the RBAC is proven by the operator's own
requests.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubeserve.devcluster import build, versions
from kubeserve.devcluster.audit import AuditTail
from kubeserve.devcluster.ports import free_port
from kubeserve.planning.naming import LABEL_SERVICE
from tests.cluster.isvc import Isvcs, example
from tests.operator_run import running_operator
from tests.polling import eventually
from tests.unit.test_chart import (
    CLUSTER_READS,
    CONFIG_MAP,
    LEASE,
    RECONCILE_GRANTS,
    REQUIRED_GRANTS,
    REQUIRED_OWN_NAMESPACE_GRANTS,
    RUNTIMES,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubeserve"
RELEASE = "kubeserve"
ACCOUNT = "kubeserve-operator"
NO_RUNTIMES = ("--set", "runtimes.enabled=false")
INSTALLS_THE_CHART = pytest.mark.cluster_wide(
    "installs and uninstalls the chart, whose ClusterRole, ClusterRoleBinding and CRDs are cluster-wide"
)


def helm_path() -> str:
    path = build.binary_path("helm")
    assert path.exists(), f"{path} is missing: run `kubeserve dev build`"
    return str(path)


def helm(kubeconfig: str, namespace: str, *args: str) -> str:
    command = [helm_path(), *args, "--namespace", namespace, "--kubeconfig", kubeconfig]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def other_namespace(kube: k8s.ApiClient) -> Iterator[str]:
    """A second fresh namespace: where the models go when the operator's own is `namespace`."""
    core = k8s.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"kubeserve.io/test": "true"}}})
    eventually(lambda: core.list_namespaced_service_account(name).items, what=f"a ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)


@contextmanager
def install(kubeconfig: str, namespace: str, *values: str) -> Iterator[str]:
    """The chart installed in `namespace`; uninstalled after, so its ClusterRole goes too."""
    helm(kubeconfig, namespace, "install", RELEASE, str(CHART), *NO_RUNTIMES, *values)
    try:
        yield namespace
    finally:
        helm(kubeconfig, namespace, "uninstall", RELEASE, "--wait")


@pytest.fixture
def release(kubeconfig: str, namespace: str) -> Iterator[str]:
    with install(kubeconfig, namespace) as installed_in:
        yield installed_in


# --- The chart as the API server sees it ----------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        (),
        # Namespaces that exist: the dry run checks the Role and RoleBinding rendered into each.
        (
            "--set",
            "replicas=1",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "watchNamespaces={default,kube-public}",
        ),
    ],
    ids=["defaults", "one-replica-two-namespaces"],
)
def test_rendered_chart_passes_a_server_side_dry_run(
    kubeconfig: str, namespace: str, installed: None, values: tuple[str, ...]
) -> None:
    """Every object the chart renders (CRDs and runtimes included), checked in full by the API server."""
    template = [helm_path(), "template", RELEASE, str(CHART), "--namespace", namespace, "--include-crds"]
    rendered = subprocess.run(
        [*template, "--kube-version", versions.KUBERNETES, *values],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"CustomResourceDefinition", "Deployment", "Role", "ClusterServingRuntime"} <= kinds
    apply = ["kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--dry-run=server"]
    result = subprocess.run(
        [*apply, "--force-conflicts", "--field-manager=kubeserve-tests", "--validate=strict", "-f", "-"],
        input=rendered,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "serverside-applied (server dry run)" in result.stdout


@INSTALLS_THE_CHART
def test_install_establishes_crds_and_rolls_out_the_operator(kube: k8s.ApiClient, release: str) -> None:
    extensions = k8s.ApiextensionsV1Api(kube)
    names = [
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in sorted((CHART / "crds").glob("*.yaml"))
    ]
    assert len(names) == 3, "the chart should carry the InferenceService and both runtime CRDs"

    def established() -> list[str]:
        ready = []
        for name in names:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                ready.append(name)
        return ready if len(ready) == len(names) else []

    eventually(established, what="every chart CRD Established")

    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    config = core.read_namespaced_config_map(CONFIG_MAP, release).data or {}
    assert "acceleratorClasses" in yaml.safe_load(config["config.yaml"])

    def available() -> bool:
        status = apps.read_namespaced_deployment_status(ACCOUNT, release).status
        conditions = (status.conditions if status else None) or []
        return (
            status is not None
            and status.ready_replicas == 2
            and any(c.type == "Available" and c.status == "True" for c in conditions)
        )

    eventually(available, timeout=60, what="both operator replicas ready")
    budget = k8s.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(ACCOUNT, release)
    assert budget.spec.min_available == 1
    service = core.read_namespaced_service("kubeserve-operator-metrics", release)
    assert [(p.name, p.port) for p in service.spec.ports] == [("http-metrics", 8080)]


@INSTALLS_THE_CHART
def test_upgrade_keeps_crds_and_inference_services(
    kube: k8s.ApiClient, kubeconfig: str, release: str
) -> None:
    """Helm never touches crds/ on upgrade: the CRDs (same uid) and an InferenceService stay."""
    extensions = k8s.ApiextensionsV1Api(kube)
    crd_uids = {
        crd.metadata.name: crd.metadata.uid
        for crd in extensions.list_custom_resource_definition().items
        if crd.spec.group == "serving.kubeserve.io"
    }
    assert len(crd_uids) == 3
    isvcs = Isvcs(kube, release)
    before = isvcs.apply(example("sklearn-iris.yaml"))

    notes = helm(
        kubeconfig,
        release,
        "upgrade",
        RELEASE,
        str(CHART),
        "--reset-then-reuse-values",
        "--set",
        "replicas=3",
        "--set",
        "config.ingress.domain=models.example.org",
    )

    print(notes)
    assert f"It runs 3 replica(s); the holder of the Lease {LEASE} reconciles" in notes
    assert "kubectl apply --server-side -f charts/kubeserve/crds/" in notes, "NOTES say how to upgrade CRDs"

    after = isvcs.get("sklearn-iris")
    assert (after["metadata"]["uid"], after["spec"]) == (before["metadata"]["uid"], before["spec"])
    assert {
        crd.metadata.name: crd.metadata.uid
        for crd in extensions.list_custom_resource_definition().items
        if crd.spec.group == "serving.kubeserve.io"
    } == crd_uids
    assert k8s.AppsV1Api(kube).read_namespaced_deployment(ACCOUNT, release).spec.replicas == 3
    config = k8s.CoreV1Api(kube).read_namespaced_config_map(CONFIG_MAP, release).data or {}
    assert yaml.safe_load(config["config.yaml"])["ingress"]["domain"] == "models.example.org"


@INSTALLS_THE_CHART
def test_shipped_runtimes_are_accepted_by_the_api_server(kube: k8s.ApiClient, release: str) -> None:
    custom = k8s.CustomObjectsApi(kube)
    refused = {}
    for name, runtime in RUNTIMES.items():
        try:
            custom.patch_cluster_custom_object(
                "serving.kubeserve.io",
                "v1beta1",
                "clusterservingruntimes",
                name,
                runtime,
                dry_run="All",
                field_manager="kubeserve-tests",
                force=True,
                field_validation="Strict",
                _content_type="application/apply-patch+yaml",
            )
        except k8s.ApiException as error:
            refused[name] = error.body
    assert not refused


# --- RBAC: enough, and no more --------------------------------------------------------------------


def can(
    kube: k8s.ApiClient,
    namespace: str,
    group: str,
    resource: str,
    verb: str,
    where: str = "models",
    name: str = "",
) -> bool:
    """Whether the operator's ServiceAccount may do verb on resource in namespace `where` ("" for all)."""
    plural, _, subresource = resource.partition("/")
    attributes = {"group": group, "resource": plural, "subresource": subresource, "verb": verb, "name": name}
    spec = k8s.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{ACCOUNT}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        resource_attributes=k8s.V1ResourceAttributes(**attributes, namespace=where),
    )
    review = k8s.AuthorizationV1Api(kube).create_subject_access_review(k8s.V1SubjectAccessReview(spec=spec))
    return review.status is not None and review.status.allowed


@INSTALLS_THE_CHART
def test_operator_account_may_do_its_job_but_never_read_secrets(kube: k8s.ApiClient, release: str) -> None:
    denied = [grant for grant in REQUIRED_GRANTS if not can(kube, release, *grant)]
    denied += [
        (group, resource, verb, name)
        for group, resource, verb, name in REQUIRED_OWN_NAMESPACE_GRANTS
        if not can(kube, release, group, resource, verb, release, name)
    ]
    assert not denied
    for verb in ("get", "list", "watch"):
        for where in ("models", release, ""):
            assert not can(kube, release, "", "secrets", verb, where), f"the operator may {verb} secrets"


WRITES = ("create", "update", "patch", "delete", "deletecollection")
NEVER_WRITTEN = [
    ("", "secrets"),
    ("", "configmaps"),
    ("", "pods"),
    ("", "pods/exec"),
    ("", "pods/eviction"),
    ("", "serviceaccounts"),
    ("", "serviceaccounts/token"),
    ("", "namespaces"),
    ("", "nodes"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments/scale"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("serving.kubeserve.io", "inferenceservices"),
    ("serving.kubeserve.io", "servingruntimes"),
    ("serving.kubeserve.io", "clusterservingruntimes"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("kopf.dev", "clusterkopfpeerings"),
    ("kopf.dev", "kopfpeerings"),
]
"""(apiGroup, resource) the operator never writes: it only reads them, or never touches them at all."""


def must_be_denied(release: str) -> list[tuple[str, str, str, str, str]]:
    """(apiGroup, resource, verb, namespace, name) the operator's account must not be allowed."""
    everywhere = ("models", release, "")
    probes = [(g, r, verb, where, "") for g, r in NEVER_WRITTEN for verb in WRITES for where in everywhere]
    # Children are written by server-side apply (patch), never replaced (update); Events are only created.
    probes += [(g, r, "update", "models", "") for g, r in [("apps", "deployments"), ("", "services")]]
    probes += [("", "events", verb, "models", "") for verb in ("update", "patch", "delete")]
    # Leases: its own, in its own namespace, only; its configuration only, too.
    lease = ("coordination.k8s.io", "leases")
    probes += [(*lease, "create", "models", "")]
    probes += [(*lease, verb, release, "another-lease") for verb in ("get", "update", "patch", "delete")]
    probes += [(*lease, verb, "models", LEASE) for verb in ("get", "update", "patch", "delete")]
    probes += [("", "configmaps", "get", release, "another-config")]
    # Nobody else's identity, and no way to grant itself more.
    probes += [("", r, "impersonate", "", "") for r in ("users", "groups", "serviceaccounts")]
    rbac = "rbac.authorization.k8s.io"
    probes += [(rbac, r, verb, "", "") for r in ("clusterroles", "roles") for verb in ("bind", "escalate")]
    return probes


@INSTALLS_THE_CHART
def test_operator_account_writes_nothing_it_never_writes(kube: k8s.ApiClient, release: str) -> None:
    """No write on kinds it only reads or never touches, in the models', its own or any namespace."""
    allowed = [
        (group, resource, verb, where or "<cluster>", name)
        for group, resource, verb, where, name in must_be_denied(release)
        if can(kube, release, group, resource, verb, where, name)
    ]
    assert allowed == []


@INSTALLS_THE_CHART
def test_installed_roles_use_no_wildcards(kube: k8s.ApiClient, release: str) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube)
    rules = rbac.read_cluster_role(ACCOUNT).rules + rbac.read_namespaced_role(ACCOUNT, release).rules
    for rule in rules:
        assert "*" not in [*rule.api_groups, *rule.resources, *rule.verbs], rule
        assert "secrets" not in rule.resources, rule
    role_rules = rbac.read_namespaced_role(ACCOUNT, release).rules
    assert all(rule.resource_names or rule.verbs == ["create"] for rule in role_rules)


@INSTALLS_THE_CHART
def test_watch_namespaces_narrow_the_operators_rbac_to_them(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, other_namespace: str, installed: None
) -> None:
    """With watchNamespaces, the account does its job in a watched namespace and nowhere else; cluster-wide
    it reads only ClusterServingRuntimes and CRDs."""
    operator_ns, watched, unwatched = namespace, other_namespace, "default"
    with install(kubeconfig, operator_ns, "--set", f"watchNamespaces={{{watched}}}"):
        eventually(
            lambda: can(kube, operator_ns, "apps", "deployments", "create", watched),
            what=f"the operator allowed to create Deployments in {watched}",
        )
        assert not can(kube, operator_ns, "apps", "deployments", "create", unwatched)
        assert can(kube, operator_ns, "serving.kubeserve.io", "clusterservingruntimes", "list", "")
        for verb in ("get", "list", "watch"):
            assert not can(kube, operator_ns, "", "secrets", verb, ""), f"the operator may {verb} secrets"
        denied = [grant for grant in RECONCILE_GRANTS if not can(kube, operator_ns, *grant, watched)]
        denied += [grant for grant in CLUSTER_READS if not can(kube, operator_ns, *grant, "")]
        denied += [
            (group, resource, verb, name)
            for group, resource, verb, name in REQUIRED_OWN_NAMESPACE_GRANTS
            if not can(kube, operator_ns, group, resource, verb, operator_ns, name)
        ]
        assert denied == []
        beyond = [
            (*grant, where or "<cluster>")
            for grant in RECONCILE_GRANTS
            for where in (unwatched, operator_ns, "")
            if can(kube, operator_ns, *grant, where)
        ]
        assert beyond == [], "granted outside the watched namespace"


# --- The chart's ServiceAccount runs the operator -------------------------------------------------


def account_kubeconfig(kube: k8s.ApiClient, namespace: str, path: Path) -> Path:
    """A kubeconfig with the server, its CA and a fresh token of the chart's ServiceAccount."""
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = (
        k8s.CoreV1Api(kube).create_namespaced_service_account_token(ACCOUNT, namespace, request).status.token
    )
    configuration = kube.configuration
    cluster: dict[str, Any] = {"server": configuration.host}
    if configuration.ssl_ca_cert:
        cluster["certificate-authority"] = str(Path(configuration.ssl_ca_cert).resolve())
    if not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": "cluster", "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@INSTALLS_THE_CHART
def test_the_charts_account_is_enough_to_serve_a_model(
    kube: k8s.ApiClient,
    kubeconfig: str,
    namespace: str,
    other_namespace: str,
    installed: None,
    session_operator_stopped: None,
    audit_log: Path,
    tmp_path: Path,
) -> None:
    """The operator, logged in as the chart's ServiceAccount, leads, reconciles sklearn to Ready,
    follows its ConfigMap, serves its endpoints, and is never refused a request: the API server's audit
    log, which records every request of the account whatever the operator logs, has no 403 for it."""
    operator_ns, models = namespace, other_namespace
    with install(kubeconfig, operator_ns, "--set", f"watchNamespaces={{{models}}}"):
        credentials = account_kubeconfig(kube, operator_ns, tmp_path / "operator.kubeconfig")
        requests = AuditTail(audit_log)
        log_path, port = tmp_path / "operator.log", free_port()
        args = ["--namespace", models, "--leader-elect", "--operator-namespace", operator_ns]
        args += ["--config-map", CONFIG_MAP, "--http-address", f"127.0.0.1:{port}", "--log-format", "json"]
        with running_operator(str(credentials), log_path, *args):
            isvcs = Isvcs(kube, models)
            body = example("sklearn-iris.yaml")
            isvcs.apply(body)
            try:
                status = isvcs.wait_ready("sklearn-iris", timeout=90)["status"]
                assert status["runtime"]["name"] == "kubeserve-server"
                assert k8s.AppsV1Api(kube).read_namespaced_deployment("sklearn-iris-predictor", models)

                # An HPA created, then pruned: every kind of write the operator makes to its children.
                scaling = k8s.AutoscalingV2Api(kube)

                def autoscalers() -> list[str]:
                    return [
                        h.metadata.name
                        for h in scaling.list_namespaced_horizontal_pod_autoscaler(models).items
                    ]

                for max_replicas, wanted in ((3, ["sklearn-iris-predictor"]), (1, [])):
                    body["spec"]["predictor"].update(minReplicas=1, maxReplicas=max_replicas)
                    isvcs.apply(body)
                    eventually(lambda want=wanted: autoscalers() == want, what=f"HPAs {wanted}")
                holder = (
                    k8s.CoordinationV1Api(kube).read_namespaced_lease(LEASE, operator_ns).spec.holder_identity
                )
                assert holder, "the operator holds its Lease"

                # The ConfigMap watch, restricted by name, sees a change.
                k8s.CoreV1Api(kube).patch_namespaced_config_map(
                    CONFIG_MAP,
                    operator_ns,
                    {"data": {"config.yaml": yaml.safe_dump({"ingress": {"domain": "models.example.org"}})}},
                )
                eventually(
                    lambda: "configuration changed" in log_path.read_text(errors="replace"),
                    timeout=30,
                    what="the operator noticing its ConfigMap change",
                )
                base = f"http://127.0.0.1:{port}"
                for path in ("/healthz", "/readyz"):
                    with urllib.request.urlopen(base + path, timeout=5) as response:
                        assert response.status == 200, path
                with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                    assert b"# TYPE" in response.read()
                time.sleep(1)  # the writes that followed the change, and their answers, in the log
            finally:
                log = log_path.read_text(errors="replace")
                print(log[-20000:])  # shown when the test fails
        user = f"system:serviceaccount:{operator_ns}:{ACCOUNT}"
        sent = [request for request in requests.requests() if request.user == user]
        assert {"list", "watch", "patch"} <= {request.verb for request in sent}, "the log has its reads"
        refused = [request for request in sent if request.code == 403]
        assert refused == [], "the operator was refused requests:\n" + "\n".join(map(str, refused[:20]))


@INSTALLS_THE_CHART
def test_by_default_kube_system_and_the_operators_namespace_are_not_reconciled(
    kube: k8s.ApiClient,
    kubeconfig: str,
    namespace: str,
    other_namespace: str,
    installed: None,
    session_operator_stopped: None,
    tmp_path: Path,
) -> None:
    """The chart's defaults, run as its ServiceAccount with its Deployment's own flags: an InferenceService
    in kube-system or in the operator's namespace gets no verdict at all (no children, no status, no
    Event), since the operator never takes them in: those namespaces are not its to serve. One applied
    after them elsewhere, through the same watch, becomes Ready, so the silence is a refusal, not a lag."""
    operator_ns, models = namespace, other_namespace
    name = f"refused-{uuid.uuid4().hex[:8]}"  # kube-system outlives the test
    with install(kubeconfig, operator_ns):
        apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
        [container] = apps.read_namespaced_deployment(ACCOUNT, operator_ns).spec.template.spec.containers
        args = [arg.replace("$(POD_NAMESPACE)", operator_ns) for arg in container.args or []]
        assert args[0] == "run" and f"--namespace=!kube-system,!{operator_ns}" in args
        port = free_port()
        args = [f"--http-address=127.0.0.1:{port}" if a.startswith("--http-address=") else a for a in args]
        credentials = account_kubeconfig(kube, operator_ns, tmp_path / "operator.kubeconfig")
        body = example("sklearn-iris.yaml")
        body["metadata"]["name"] = name
        refused = [Isvcs(kube, where) for where in ("kube-system", operator_ns)]
        log_path = tmp_path / "operator.log"
        for isvcs in refused:
            isvcs.apply(body)
        try:
            with running_operator(str(credentials), log_path, *args[1:]):
                served = Isvcs(kube, models)
                served.apply(body)
                served.wait_ready(name, timeout=90)
                for isvcs in refused:
                    where, selector = isvcs.namespace, f"{LABEL_SERVICE}={name}"
                    assert "status" not in isvcs.get(name), where
                    assert not apps.list_namespaced_deployment(where, label_selector=selector).items, where
                    assert not core.list_namespaced_service(where, label_selector=selector).items, where
                    events = core.list_namespaced_event(where, field_selector=f"involvedObject.name={name}")
                    assert not events.items, where
        finally:
            refused[0].delete(name)
            print(log_path.read_text(errors="replace")[-20000:])  # shown when the test fails
