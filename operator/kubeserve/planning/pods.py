"""The pod template of each component: the runtime's containers merged with the model, storage, placement.

Merging follows KServe: the runtime's first container serves the model; the
model's own args are appended to the runtime's, its env entries replace the
runtime's of the same name, its resource requests and limits replace the
runtime's of the same resource (KServe's strategic merge of the two: a model
that sets only `limits.cpu` keeps the runtime's requests and memory limit),
and any other container field it sets (ports, probes) replaces the runtime's.
Pod-level fields of the runtime come first and the component's are laid over
them. Unlike KServe, a securityContext merges field by field, and every
container starts from the `restricted` level (`hardening`). The storage plan's
sidecars (a modelcar) follow the serving containers; when they share the
pod's processes, the model server, the sidecars and the storage plan's init
containers run as one user and group (`storage.shared_identity`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.api.common import Container, ContainerFields, PodCommon
from kubeserve.api.components import MODEL_CONTAINER, ComponentSpec, ModelSpec, PredictorSpec
from kubeserve.api.inference_service import InferenceService
from kubeserve.planning.hardening import harden, layered
from kubeserve.planning.placement import Placement
from kubeserve.planning.runtime_selection import RuntimeChoice
from kubeserve.planning.server_settings import setting_variables
from kubeserve.planning.storage import StoragePlan, shared_identity
from kubeserve.planning.templating import TemplateContext, render_container

DEFAULT_PORT = 8080
PREDICTOR_HOST_ENV = "PREDICTOR_HOST"
CONTAINER_KEYS = frozenset(field.alias or name for name, field in ContainerFields.model_fields.items())
"""The wire names of a container's fields: what a model spec may lay over the runtime's container."""

# Pod-spec fields a component may set inline, as KServe names them.
_POD_FIELDS = (
    "serviceAccountName",
    "runtimeClassName",
    "priorityClassName",
    "topologySpreadConstraints",
    "securityContext",
    "schedulerName",
    "terminationGracePeriodSeconds",
    "dnsPolicy",
    "dnsConfig",
    "hostAliases",
    "automountServiceAccountToken",
    "affinity",
)


@dataclass(frozen=True)
class PodParts:
    """What the pod template is built from, gathered by the planner."""

    service: InferenceService
    component: str
    spec: ComponentSpec
    placement: Placement
    storage: StoragePlan
    runtime: RuntimeChoice | None = None
    model: ModelSpec | None = None
    predictor_host: str | None = None


def with_version(image: str, version: str) -> str:
    """The image at a model's runtimeVersion: a tag (`img:2.1`) or a digest (`img@sha256:...`, which has a
    colon, as no tag has) replaces the image's own tag and digest; a registry port (`host:5000/img`) stays."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return f"{name}@{version}" if ":" in version else f"{name}:{version}"


def _merge_env(base: list[dict[str, Any]], overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {entry["name"] for entry in overrides}
    return [entry for entry in base if entry["name"] not in names] + overrides


def _merge_resources(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    for amounts in ("requests", "limits"):
        if amounts in base and amounts in overrides:
            merged[amounts] = {**base[amounts], **overrides[amounts]}
    return merged


def _model_container(parts: PodParts, runtime_containers: list[dict[str, Any]]) -> dict[str, Any]:
    """The runtime's first container, templated, with the model's own fields laid over it."""
    assert parts.model is not None and parts.runtime is not None
    model = parts.model
    context = TemplateContext(
        name=parts.service.metadata.name or "",
        namespace=parts.service.metadata.namespace or "",
        labels=parts.service.metadata.labels or {},
        annotations=parts.service.metadata.annotations or {},
        model_dir=parts.storage.model_dir,
        model_format=model.model_format.name,
        protocol=model.protocol,
        **setting_variables(parts.spec),
    )
    container = render_container(runtime_containers[0], context)
    overrides = {key: value for key, value in model.to_dict().items() if key in CONTAINER_KEYS}
    args = overrides.pop("args", [])
    env = overrides.pop("env", [])
    overrides.pop("name", None)
    security = layered(container.get("securityContext") or {}, overrides.pop("securityContext", None) or {})
    if "resources" in overrides:
        overrides["resources"] = _merge_resources(container.get("resources") or {}, overrides["resources"])
    container.update(overrides)
    if security:
        container["securityContext"] = security
    container["args"] = [*container.get("args", []), *args]
    container["env"] = _merge_env(container.get("env", []), env)
    spec = parts.runtime.runtime.spec
    accelerator_image = spec.accelerator_image(
        parts.placement.accelerator_class, list(parts.placement.accelerator_resources)
    )
    if parts.placement.uses_accelerator and accelerator_image:
        container["image"] = accelerator_image
    if model.runtime_version:
        container["image"] = with_version(container["image"], model.runtime_version)
    return container


def _serving_containers(parts: PodParts) -> list[dict[str, Any]]:
    if parts.runtime is not None:
        runtime_containers = [c.to_dict() for c in parts.runtime.runtime.spec.containers]
        collocated = [c.to_dict() for c in _collocated(parts.spec)]
        return [_model_container(parts, runtime_containers), *runtime_containers[1:], *collocated]
    containers = [c.to_dict() for c in parts.spec.containers or []]
    if parts.predictor_host is not None and containers:
        first = containers[0]
        first["env"] = _merge_env(
            [{"name": PREDICTOR_HOST_ENV, "value": parts.predictor_host}], first.get("env", [])
        )
        args = first.get("args", [])
        for flag, value in (
            ("--predictor_host", parts.predictor_host),
            ("--model_name", parts.service.metadata.name or ""),
        ):
            if not any(re.match(rf"{flag}(=|$)", arg) for arg in args):
                args = [*args, f"{flag}={value}"]
        first["args"] = args
    return containers


def _collocated(spec: ComponentSpec) -> list[Container]:
    return spec.collocated() if isinstance(spec, PredictorSpec) else []


def _entry_container(template: Mapping[str, Any], spec: ComponentSpec) -> Mapping[str, Any]:
    """The container the component's Service sends requests to: a collocated transformer, when it
    declares ports (it calls the model server inside the pod), else the serving container."""
    names = {c.name for c in _collocated(spec)}
    containers = template["spec"]["containers"]
    entry: Mapping[str, Any] = next(
        (c for c in containers if c["name"] in names and c.get("ports")), containers[0]
    )
    return entry


def entry_ports(template: Mapping[str, Any], spec: ComponentSpec) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = _entry_container(template, spec)["ports"]
    return ports


def entry_readiness(template: Mapping[str, Any], spec: ComponentSpec) -> tuple[int, str] | None:
    """(container port, path) of the entry container's HTTP readiness probe, when that probe alone
    decides the pod's readiness: the activator asks it directly while a pod starts, instead of waiting
    up to a probe period for the kubelet to ask. None for another kind of probe, one with a host,
    headers or HTTPS, or when another container has a readiness probe of its own."""
    entry = _entry_container(template, spec)
    others = [c for c in template["spec"]["containers"] if c is not entry and c.get("readinessProbe")]
    get = (entry.get("readinessProbe") or {}).get("httpGet")
    if others or not get or get.get("host") or get.get("httpHeaders") or get.get("scheme", "HTTP") != "HTTP":
        return None
    port = get.get("port")
    if isinstance(port, str):
        port = next((p["containerPort"] for p in entry.get("ports") or [] if p.get("name") == port), None)
    path = get.get("path") or "/"
    return (port, path) if isinstance(port, int) and path.startswith("/") else None


def _finish_serving_container(container: dict[str, Any], parts: PodParts) -> dict[str, Any]:
    container["name"] = MODEL_CONTAINER if parts.runtime is not None else container["name"]
    if parts.storage.model_mounts:
        container["volumeMounts"] = [*container.get("volumeMounts", []), *parts.storage.model_mounts]
    if parts.storage.server_env:
        container["env"] = _merge_env(list(parts.storage.server_env), container.get("env", []))
    if parts.storage.server_env_from:
        container["envFrom"] = [*container.get("envFrom", []), *parts.storage.server_env_from]
    if parts.placement.added_limits:
        resources = container.setdefault("resources", {})
        resources["limits"] = {**resources.get("limits", {}), **parts.placement.added_limits}
    if not container.get("ports"):
        container["ports"] = [{"name": "http1", "containerPort": DEFAULT_PORT, "protocol": "TCP"}]
    # A server that exits (a model that does not load) leaves its reason as its termination message,
    # or, if it wrote none, the end of its log; the service's condition shows it.
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return {key: value for key, value in container.items() if value not in ([], {}, None)}


def _as(identity: Mapping[str, int], container: dict[str, Any]) -> dict[str, Any]:
    return {**container, "securityContext": {**container["securityContext"], **identity}}


def build_pod_template(parts: PodParts, labels: Mapping[str, str]) -> dict[str, Any]:
    """The pod template (without its revision label, which is derived from it)."""
    storage = parts.storage
    containers = _serving_containers(parts)
    containers[0] = _finish_serving_container(containers[0], parts)
    runtime: PodCommon = parts.runtime.runtime.spec if parts.runtime else PodCommon()
    component = parts.spec
    hardened = [harden(container) for container in [*containers, *storage.sidecars]]
    storage_init = [harden(container) for container in storage.init_containers]
    spec: dict[str, Any] = {"containers": hardened}
    runtime_dict, component_dict = runtime.to_dict(), component.to_dict()
    for key in _POD_FIELDS:
        value = component_dict.get(key, runtime_dict.get(key))
        if value is not None:
            spec[key] = value
    if storage.shares_processes:
        spec["shareProcessNamespace"] = True
        identity = shared_identity(hardened[0]["securityContext"], spec.get("securityContext") or {})
        shared = len(hardened) - len(storage.sidecars)
        hardened[0] = _as(identity, hardened[0])
        hardened[shared:] = [_as(identity, container) for container in hardened[shared:]]
        storage_init = [_as(identity, container) for container in storage_init]
    init = [*storage_init, *(harden(c.to_dict()) for c in parts.spec.init_containers or [])]
    if init:
        spec["initContainers"] = init
    volumes = [
        *(v.to_dict() for v in runtime.volumes or []),
        *(v.to_dict() for v in component.volumes or []),
        *storage.volumes,
    ]
    if volumes:
        spec["volumes"] = volumes
    node_selector = {
        **parts.placement.node_selector,
        **(runtime.node_selector or {}),
        **(component.node_selector or {}),
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    tolerations = [
        *(t.to_dict() for t in runtime.tolerations or []),
        *(t.to_dict() for t in component.tolerations or []),
    ]
    tolerations += [t for t in parts.placement.tolerations if t not in tolerations]
    if tolerations:
        spec["tolerations"] = tolerations
    pull_secrets = [
        *(s.to_dict() for s in runtime.image_pull_secrets or []),
        *(s.to_dict() for s in component.image_pull_secrets or []),
    ]
    if pull_secrets:
        spec["imagePullSecrets"] = pull_secrets
    metadata: dict[str, Any] = {
        "labels": {**(runtime.labels or {}), **(component.labels or {}), **labels},
    }
    annotations = {**(runtime.annotations or {}), **(component.annotations or {})}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}
