"""KServe's `deploymentMode` and `autoscalerClass` annotations: what Kubeserve does with each value.

Kubeserve runs KServe's raw ("Standard") mode only: Deployments, Services and
HPAs, no Knative. The autoscaler class decides who owns a component's replica
count:

- `hpa` (the default): an HPA between minReplicas and maxReplicas, when they
  differ; else the Deployment has minReplicas.
- `none`: no autoscaler; the Deployment has minReplicas, fixed.
- `external`: no autoscaler, and the Deployment's `replicas` is left out of
  what Kubeserve applies, so whoever owns the count (their own HPA, KEDA
  ScaledObject or a person) is never fought by server-side apply.
- `keda`: KEDA ScaledObjects are not built yet; the component gets an HPA as
  with `hpa`, and says so.

What a service asks for and does not get is said in the `FieldsSupported`
condition, never dropped: another deployment mode, `keda`, and minReplicas 0
(scale to zero needs a request-holding proxy, not built yet). A value outside
the lists is refused, naming the annotation and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from kubeserve.api.components import ComponentSpec

AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
AutoscalerClass = Literal["hpa", "keda", "external", "none"]
AUTOSCALER_CLASSES: tuple[AutoscalerClass, ...] = ("hpa", "keda", "external", "none")
RAW_MODES = ("RawDeployment", "Standard")
"""KServe's names, old and new, for the mode Kubeserve runs."""
OTHER_MODES = ("Serverless", "Knative", "ModelMesh")


class InvalidAnnotation(ValueError):
    pass


@dataclass(frozen=True)
class ScalingMode:
    autoscaler_class: AutoscalerClass
    notes: tuple[str, ...]
    """What the service asks for that this component does not get, one sentence each."""

    @property
    def owns_replicas(self) -> bool:
        """Whether Kubeserve sets the Deployment's replicas (or an HPA of its own does)."""
        return self.autoscaler_class != "external"

    @property
    def may_autoscale(self) -> bool:
        return self.autoscaler_class in ("hpa", "keda")


def _annotation(annotations: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str | None:
    value = annotations.get(key)
    if value is not None and value not in allowed:
        raise InvalidAnnotation(f"metadata.annotations[{key}] is {value!r}: use one of {', '.join(allowed)}")
    return value


def scaling_mode(annotations: Mapping[str, str], component: str, spec: ComponentSpec) -> ScalingMode:
    """The component's scaling under the service's annotations; raises InvalidAnnotation."""
    mode = _annotation(annotations, DEPLOYMENT_MODE, RAW_MODES + OTHER_MODES)
    autoscaler = cast(
        AutoscalerClass, _annotation(annotations, AUTOSCALER_CLASS, AUTOSCALER_CLASSES) or "hpa"
    )
    notes: list[str] = []
    if mode in OTHER_MODES and component == "predictor":  # said once per service
        notes.append(
            f"metadata.annotations[{DEPLOYMENT_MODE}]={mode}: Kubeserve runs KServe's Standard (raw) "
            "mode only, so the service runs as Deployments and Services"
        )
    if autoscaler == "keda":
        notes.append(
            f"metadata.annotations[{AUTOSCALER_CLASS}]=keda: KEDA ScaledObjects are not built yet, "
            f"so spec.{component} gets an HPA as with hpa"
        )
    if spec.min_replicas == 0 and autoscaler != "external":
        notes.append(
            f"spec.{component}.minReplicas 0: scale to zero is not built yet, so it keeps at least 1 replica"
        )
    return ScalingMode(autoscaler, tuple(notes))
