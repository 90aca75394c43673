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
- `keda`: a KEDA ScaledObject (`scaled_object.py`) instead of the HPA; KEDA
  owns the replica count. On a cluster that does not serve KEDA's CRD the
  component is not planned, with the reason `KedaNotInstalled` (`plan.py`).

What a service asks for and does not get is said in the `FieldsSupported`
condition, never dropped: another deployment mode, minReplicas 0 while the
operator's configuration leaves scale to zero off (`scaleToZero.enabled`:
it needs the activator; on, `scale_to_zero.py` plans it), autoScaling metrics the
class cannot act on (an External query under `hpa`; any under `none` or
`external`; any without room to scale), autoScaling.keda outside `keda`, and
concurrency or rps under `keda` without a query. A value outside the lists is refused, naming the
annotation and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from kubeserve.api.components import ComponentSpec
from kubeserve.planning.autoscaler import wants_autoscaler
from kubeserve.planning.scaled_object import RESOURCE_METRICS

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
    scales_to_zero: bool = False
    """minReplicas 0 with scale to zero on: routed through the activator while idle, which wakes it."""

    @property
    def owns_replicas(self) -> bool:
        """Whether Kubeserve sets the Deployment's replicas (or an HPA of its own does): not under the
        external class, nor when the activator wakes the Deployment from zero."""
        return self.autoscaler_class != "external" and not self.scales_to_zero

    @property
    def may_autoscale(self) -> bool:
        return self.autoscaler_class in ("hpa", "keda")


def _annotation(annotations: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str | None:
    value = annotations.get(key)
    if value is not None and value not in allowed:
        raise InvalidAnnotation(f"metadata.annotations[{key}] is {value!r}: use one of {', '.join(allowed)}")
    return value


def _metric_notes(autoscaler: AutoscalerClass, where: str, spec: ComponentSpec) -> list[str]:
    """What of the component's metrics this autoscaler class does not act on."""
    auto = spec.auto_scaling
    if autoscaler in ("none", "external"):
        return (
            [f"{where}.autoScaling: the {autoscaler} autoscaler class creates no autoscaler"] if auto else []
        )
    if auto is not None and not wants_autoscaler(spec):
        return [f"{where}.autoScaling: maxReplicas is not above minReplicas, so nothing scales on it"]
    notes = []
    if autoscaler == "hpa" and auto is not None:
        notes += [
            f"{where}.autoScaling.metrics[{index}] ({metric.external.metric.backend} query): an HPA cannot "
            f"run a backend's query, so it is not scaled on; the keda autoscaler class (KEDA) does"
            for index, metric in enumerate(auto.metrics or [])
            if metric.external is not None
        ]
        if auto.keda is not None:
            notes.append(
                f"{where}.autoScaling.keda: KEDA's options apply under the keda autoscaler class only"
            )
    if autoscaler == "keda" and spec.scale_metric is not None and spec.scale_metric not in RESOURCE_METRICS:
        notes.append(
            f"{where}.scaleMetric {spec.scale_metric}: KEDA reads it only through a metrics backend, so "
            "give it as an autoScaling External prometheus query; it scales on cpu meanwhile"
        )
    return notes


def scaling_mode(
    annotations: Mapping[str, str], component: str, spec: ComponentSpec, *, scale_to_zero: bool = False
) -> ScalingMode:
    """The component's scaling under the service's annotations and whether the operator's configuration
    turns scale to zero on; raises InvalidAnnotation."""
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
    notes += _metric_notes(autoscaler, f"spec.{component}", spec)
    idle = spec.min_replicas == 0
    if idle and not scale_to_zero and autoscaler != "external":
        notes.append(
            f"spec.{component}.minReplicas 0: scale to zero is off in this operator's configuration "
            "(scaleToZero.enabled turns it on, with the activator installed), so it keeps at least 1 replica"
        )
    return ScalingMode(autoscaler, tuple(notes), idle and scale_to_zero)
