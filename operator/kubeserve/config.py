"""The operator's configuration: one documented `config.yaml`.

It comes from the file `KUBESERVE_CONFIG` names (local runs), or from a
ConfigMap followed live (`kubeserve.live_config`, as the chart installs it);
every key is optional. Unknown keys and bad values are refused with the key
named, rather than ignored at 3 a.m.: at start the operator stops, later the
previous configuration stays in force.
Every key is listed in the README's Configuration table (generated from this model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from kubeserve.api.common import Toleration, explain

CONFIG_ENV = "KUBESERVE_CONFIG"


class ConfigModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class AcceleratorClass(ConfigModel):
    """A kind of accelerator node: how pods request it and how they find its nodes."""

    resource_name: str = Field(
        description="The extended resource the class's devices are requested by (`nvidia.com/gpu`)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels added to a pod of the class, so it lands on that product.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(),
        description="Tolerations added to a pod of the class, for the taints its nodes carry. "
        "CPU-only pods never get them.",
    )


class GatewayRef(ConfigModel):
    namespace: str = Field(
        default="kubeserve-system",
        description="Namespace of the Gateway that HTTPRoutes attach to (their `parentRef`), or of the "
        "Istio Gateway that VirtualServices name.",
    )
    name: str = Field(default="kubeserve-gateway", description="Name of that Gateway.")


class TrafficConfig(ConfigModel):
    backend: Literal["auto", "gateway", "istio", "service"] = Field(
        default="auto",
        description="How canary traffic is split. `auto`: Gateway API when its HTTPRoute CRD exists, else "
        "Istio when its VirtualService CRD exists, else `service` (replica ratio behind one Service, "
        "approximate).",
    )
    gateway: GatewayRef = GatewayRef()


class IngressConfig(ConfigModel):
    domain: str = Field(
        default="example.com",
        description="Routed services get the URL `http://<isvc>-<namespace>.<domain>`.",
    )


class StorageInitializerConfig(ConfigModel):
    image: str = Field(
        default="ghcr.io/kubeserve/storage-initializer:0.1.0",
        description="Image of the init container that fetches `storageUri` into `/mnt/models`.",
    )


class PodSecurityConfig(ConfigModel):
    allow_loosening: bool = Field(
        default=True,
        description="Whether a service may loosen the pods' `restricted` hardening (privileged, root, added "
        "capabilities, hostPath). Allowed, it gets a False `PodHardened` condition and a Warning Event; "
        "refused, it is not deployed. Pod Security admission has the last word either way.",
    )


class ActivatorRef(ConfigModel):
    namespace: str | None = Field(
        default=None,
        description="Namespace of the activator's Service; the operator's own namespace when unset.",
    )
    name: str = Field(default="kubeserve-activator", description="Name of the activator's Service.")


class ScaleToZeroConfig(ConfigModel):
    enabled: bool = Field(
        default=False,
        description="Whether a component with `minReplicas: 0` scales to zero: its Service routes to the "
        "activator (which holds requests and wakes the Deployment) while no pod is Ready, and to the pods "
        "directly otherwise. Needs the activator installed; off, minReplicas 0 keeps 1 replica.",
    )
    activator: ActivatorRef = ActivatorRef()
    idle_window_seconds: int = Field(
        default=300,
        ge=1,
        description="How long a scaled-to-zero component must see no request before the activator scales "
        "it to 0 replicas; a service's annotation `serving.kubeserve.io/scale-to-zero-window` overrides it.",
    )

    def activator_service(self, operator_namespace: str | None) -> tuple[str, str] | None:
        """(namespace, name) of the activator's Service; None while off, or when no namespace is known."""
        namespace = self.activator.namespace or operator_namespace
        return (namespace, self.activator.name) if self.enabled and namespace else None


def _gpu_class(resource: str, label: str, product: str) -> AcceleratorClass:
    return AcceleratorClass(
        resource_name=resource,
        node_selector={label: product},
        tolerations=(Toleration(key=resource, operator="Exists", effect="NoSchedule"),),
    )


DEFAULT_ACCELERATOR_CLASSES = {
    "nvidia-a100": _gpu_class("nvidia.com/gpu", "nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"),
    "nvidia-h100": _gpu_class("nvidia.com/gpu", "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
    "amd-mi300": _gpu_class("amd.com/gpu", "amd.com/gpu.product-name", "AMD_Instinct_MI300X"),
}


class OperatorConfig(ConfigModel):
    """Everything an operator installation decides for all the services it runs."""

    ingress: IngressConfig = IngressConfig()
    traffic: TrafficConfig = TrafficConfig()
    storage_initializer: StorageInitializerConfig = StorageInitializerConfig()
    pod_security: PodSecurityConfig = PodSecurityConfig()
    scale_to_zero: ScaleToZeroConfig = ScaleToZeroConfig()
    accelerator_classes: dict[str, AcceleratorClass] = Field(
        default_factory=lambda: dict(DEFAULT_ACCELERATOR_CLASSES),
        description="GPU and other accelerator classes by name (`model.accelerator` names one). A runtime's "
        "`acceleratorImages` is looked up by class name first, then by `resourceName`.",
    )

    def accelerator_resources(self) -> set[str]:
        """Extended resource names that mean "this pod needs an accelerator"."""
        return {c.resource_name for c in self.accelerator_classes.values()}


def parse_config(text: str) -> OperatorConfig:
    """One `config.yaml`, from a file or a ConfigMap; raises ValueError naming the bad key."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"config.yaml is not YAML: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"config.yaml must be a mapping of keys, not {type(data).__name__}")
    try:
        return OperatorConfig.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"config.yaml: {explain(error)}") from error


def load_config(path: str | None = None) -> OperatorConfig:
    """The configuration in `path` (or `$KUBESERVE_CONFIG`); defaults when neither is set."""
    source = path or os.environ.get(CONFIG_ENV)
    if not source:
        return OperatorConfig()
    return parse_config(Path(source).read_text())
