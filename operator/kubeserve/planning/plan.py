"""From an InferenceService, its runtimes, observed revisions and the configuration to its children.

Pure: no I/O and no clock. The reconciler gathers the inputs from its view of the
cluster and hands the plan to the applier; everything a test needs to check "what would be
created" is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubeserve.api.components import ComponentSpec, ModelSpec, PredictorSpec
from kubeserve.api.inference_service import InferenceService
from kubeserve.api.serving_runtime import ClusterServingRuntime, ServingRuntime
from kubeserve.config import OperatorConfig
from kubeserve.planning import naming
from kubeserve.planning.autoscaler import build_autoscaler, min_replicas, wants_autoscaler
from kubeserve.planning.deployment import ACCELERATOR_STRATEGY, DEFAULT_STRATEGY, build_deployment
from kubeserve.planning.hardening import loosening
from kubeserve.planning.placement import UnknownAcceleratorClass, plan_placement
from kubeserve.planning.pods import PodParts, build_pod_template, entry_ports, entry_readiness
from kubeserve.planning.revisions import revision_name, template_hash
from kubeserve.planning.rollout import (
    CANARY,
    LABEL_TRACK,
    STABLE,
    Rollout,
    TrackState,
    plan_rollout,
    track_replicas,
)
from kubeserve.planning.runtime_selection import NoRuntimeFits, RuntimeChoice, select_runtime
from kubeserve.planning.scale_to_zero import Leftover, Target, idle_window_seconds, plan_routing
from kubeserve.planning.scaled_object import build_scaled_object
from kubeserve.planning.scaling_mode import AUTOSCALER_CLASS, InvalidAnnotation, scaling_mode
from kubeserve.planning.server_settings import unsupported_fields, unsupported_spec
from kubeserve.planning.service import build_service
from kubeserve.planning.storage import StoragePlan, StorageUriError, fetched_by_runtime, plan_model_storage
from kubeserve.planning.templating import TemplateError
from kubeserve.planning.traffic import (
    MIRROR_ANNOTATION,
    Backend,
    TrafficError,
    ingress_host,
    mirror_percent,
    plan_traffic,
)


class PlanningError(Exception):
    """What only the operator can judge is wrong; it becomes a condition and an Event, never a crash."""

    def __init__(self, component: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.component = component
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PlanInputs:
    """Everything besides the service that the plan depends on, as observed in the cluster."""

    config: OperatorConfig
    namespaced_runtimes: Sequence[ServingRuntime] = ()
    cluster_runtimes: Sequence[ClusterServingRuntime] = ()
    service_accounts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tracks: Mapping[tuple[str, str], TrackState] = field(default_factory=dict)
    """(component, track) -> what that track's Deployment runs now."""
    backend: Backend = "service"
    """The traffic backend in effect: the configured one, if the cluster serves it (see traffic.py)."""
    keda: bool = False
    """Whether the cluster serves KEDA's ScaledObjects, which the keda autoscaler class needs."""
    endpoint_slices: Sequence[Mapping[str, Any]] = ()
    """The service's watched EndpointSlices: its pods Services' (scale to zero routes to their Ready pods)."""
    activator_slices: Sequence[Mapping[str, Any]] = ()
    """The activator Service's EndpointSlices: where an idle component's requests go."""


@dataclass(frozen=True)
class ComponentPlan:
    component: str
    name: str
    revision: str
    rollout: Rollout
    runtime: RuntimeChoice | None
    objects: tuple[dict[str, Any], ...]
    ports: tuple[dict[str, Any], ...]
    """Ports of the serving container, which every Service of the component exposes."""
    loosened: tuple[str, ...] = ()
    """What in the pod template loosens the `restricted` hardening (`hardening.loosening`)."""
    unsupported: tuple[str, ...] = ()
    """What the service asks for that is not acted on: fields its runtime does not read
    (`server_settings.unsupported_fields`) and scaling it does not get (`scaling_mode`)."""
    routing: Target | None = None
    """Under scale to zero, where its Service's requests go (`scale_to_zero.py`); else None."""
    leftovers: tuple[Leftover, ...] = ()
    """Not children, yet to delete: what Kubernetes made of its Service's former selector."""


@dataclass(frozen=True)
class Plan:
    components: dict[str, ComponentPlan]
    traffic: tuple[dict[str, Any], ...] = ()
    """The entry component's route and per-track Services, when a gateway splits the traffic."""
    ingress_url: str | None = None

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [obj for component in self.components.values() for obj in component.objects] + list(
            self.traffic
        )

    @property
    def runtime(self) -> RuntimeChoice | None:
        predictor = self.components.get("predictor")
        return predictor.runtime if predictor else None


def _model_of(spec: ComponentSpec) -> ModelSpec | None:
    return spec.effective_model() if isinstance(spec, PredictorSpec) else None


def _choose_runtime(model: ModelSpec, inputs: PlanInputs) -> RuntimeChoice:
    try:
        return select_runtime(model, inputs.namespaced_runtimes, inputs.cluster_runtimes)
    except NoRuntimeFits as error:
        raise PlanningError("predictor", "NoRuntime", str(error)) from error


def _storage(
    model: ModelSpec | None,
    spec: ComponentSpec,
    inputs: PlanInputs,
    component: str,
    service: InferenceService,
    runtime: RuntimeChoice | None,
) -> StoragePlan:
    account = inputs.service_accounts.get(spec.service_account_name or "default")
    try:
        plan = plan_model_storage(
            model, spec.storage_uris, account, inputs.config, service.metadata.annotations
        )
    except StorageUriError as error:
        raise PlanningError(component, "InvalidStorageUri", str(error)) from error
    helper = runtime.runtime.spec.storage_helper if runtime else None
    return fetched_by_runtime(plan) if helper is not None and helper.disabled else plan


def _pod_template(
    service: InferenceService,
    component: str,
    spec: ComponentSpec,
    inputs: PlanInputs,
    runtime: RuntimeChoice | None,
    labels: dict[str, str],
) -> tuple[dict[str, Any], bool]:
    """The template, and whether it needs an accelerator."""
    model = _model_of(spec)
    resources = [model.resources] if model else [c.resources for c in spec.containers or []]
    try:
        placement = plan_placement(model.accelerator if model else None, resources, inputs.config)
    except UnknownAcceleratorClass as error:
        raise PlanningError(component, "UnknownAcceleratorClass", str(error)) from error
    name = service.metadata.name or ""
    parts = PodParts(
        service=service,
        component=component,
        spec=spec,
        placement=placement,
        storage=_storage(model, spec, inputs, component, service, runtime),
        runtime=runtime,
        model=model,
        predictor_host=None
        if component == "predictor"
        else f"{naming.component_name(name, 'predictor')}.{service.metadata.namespace}",
    )
    try:
        template = build_pod_template(parts, labels)
    except TemplateError as error:
        raise PlanningError(component, "InvalidRuntimeTemplate", str(error)) from error
    return template, placement.uses_accelerator


def _with_revision(template: dict[str, Any], digest: str, track: str) -> dict[str, Any]:
    labels = {**template["metadata"]["labels"], naming.LABEL_REVISION: digest, LABEL_TRACK: track}
    return {**template, "metadata": {**template["metadata"], "labels": labels}}


def _stable_template(
    rollout: Rollout, template: dict[str, Any], digest: str, observed: TrackState | None
) -> dict[str, Any]:
    """The stable track's template: the new one, or (during a canary, after a rollback) the one it runs."""
    if rollout.stable_takes_new or observed is None:
        return _with_revision(template, digest, STABLE)
    running = observed.template
    return {
        "metadata": {
            key: running["metadata"][key] for key in ("labels", "annotations") if key in running["metadata"]
        },
        "spec": running["spec"],
    }


def plan_component(
    service: InferenceService, component: str, spec: ComponentSpec, inputs: PlanInputs
) -> ComponentPlan:
    name = service.metadata.name or ""
    namespace = service.metadata.namespace or ""
    owner = naming.owner_reference(name, service.metadata.uid or "")
    base_name = naming.component_name(name, component)
    refusal = unsupported_spec(component, spec)
    if refusal:
        raise PlanningError(component, "Unsupported", refusal)
    model = _model_of(spec)
    runtime = _choose_runtime(model, inputs) if model else None
    labels = naming.child_labels(name, component, runtime.runtime.name if runtime else None)
    template, accelerated = _pod_template(service, component, spec, inputs, runtime, labels)
    loosened = tuple(loosening(template["spec"]))
    if loosened and not inputs.config.pod_security.allow_loosening:
        raise PlanningError(
            component,
            "HardeningRefused",
            f"{'; '.join(loosened)}: this operator's configuration (podSecurity.allowLoosening: false) "
            "runs pods at the `restricted` level only",
        )
    digest = template_hash(template)
    revision = revision_name(name, component, digest)
    stable_state = inputs.tracks.get((component, STABLE))
    rollout = plan_rollout(
        revision, spec.canary_traffic_percent, stable_state, inputs.tracks.get((component, CANARY))
    )
    strategy = spec.deployment_strategy or (ACCELERATOR_STRATEGY if accelerated else DEFAULT_STRATEGY)
    selector = naming.selector_labels(name, component)
    try:
        scaling = scaling_mode(
            service.metadata.annotations or {},
            component,
            spec,
            scale_to_zero=inputs.config.scale_to_zero.enabled,
        )
        idle_seconds = idle_window_seconds(
            service.metadata.annotations or {}, inputs.config.scale_to_zero.idle_window_seconds
        )
    except InvalidAnnotation as error:
        raise PlanningError(component, "InvalidAnnotation", str(error)) from error
    autoscaled = scaling.may_autoscale and wants_autoscaler(spec)
    keda = scaling.autoscaler_class == "keda"
    if autoscaled and keda and not inputs.keda:
        raise PlanningError(
            component,
            "KedaNotInstalled",
            f"metadata.annotations[{AUTOSCALER_CLASS}]=keda: KEDA is not installed (this cluster does not "
            "serve keda.sh/v1alpha1 ScaledObjects); install KEDA, or use the hpa autoscaler class",
        )
    build_autoscaler_of = build_scaled_object if keda else build_autoscaler
    stable_replicas, canary_replicas = (
        track_replicas(min_replicas(spec), rollout) if scaling.owns_replicas else (None, None)
    )
    metadata = naming.child_metadata(base_name, namespace, labels, owner)
    ports = entry_ports(template, spec)
    canary_name = f"{base_name}-canary"
    routing = (
        plan_routing(
            metadata,
            selector,
            ports,
            inputs.endpoint_slices,
            inputs.activator_slices,
            (base_name, canary_name) if rollout.in_canary else (base_name,),
            idle_seconds,
            entry_readiness(template, spec),
        )
        if scaling.scales_to_zero
        else None
    )
    objects: list[dict[str, Any]] = [
        *(routing.objects if routing else [build_service(metadata, selector, ports)]),
        build_deployment(
            metadata,
            {**selector, LABEL_TRACK: STABLE},
            _stable_template(rollout, template, digest, stable_state),
            None if autoscaled else stable_replicas,
            strategy,
        ),
    ]
    if autoscaled:
        objects.append(build_autoscaler_of(metadata, base_name, spec, rollout.stable_percent))
    if rollout.in_canary:
        canary_metadata = naming.child_metadata(canary_name, namespace, labels, owner)
        objects.append(
            build_deployment(
                canary_metadata,
                {**selector, LABEL_TRACK: CANARY},
                _with_revision(template, digest, CANARY),
                None if autoscaled else canary_replicas,
                strategy,
            )
        )
        if autoscaled:
            objects.append(
                build_autoscaler_of(canary_metadata, canary_name, spec, rollout.requested_percent or 0)
            )
    return ComponentPlan(
        component,
        base_name,
        revision,
        rollout,
        runtime,
        tuple(objects),
        tuple(ports),
        loosened,
        unsupported_fields(component, spec, runtime) + scaling.notes,
        routing.target if routing else None,
        routing.leftovers if routing else (),
    )


def plan_service(service: InferenceService, inputs: PlanInputs) -> Plan:
    """Raises PlanningError, naming the component, the reason and what to do."""
    components: dict[str, ComponentPlan] = {
        name: plan_component(service, name, spec, inputs) for name, spec in service.spec.components().items()
    }
    entry = components["transformer" if "transformer" in components else "predictor"]
    name = service.metadata.name or ""
    namespace = service.metadata.namespace or ""
    route_metadata = naming.child_metadata(
        name,
        namespace,
        naming.child_labels(name, entry.component, entry.runtime.runtime.name if entry.runtime else None),
        naming.owner_reference(name, service.metadata.uid or ""),
    )
    idle = entry.routing is not None
    try:
        mirror = mirror_percent(service.metadata.annotations or {})
        traffic = plan_traffic(
            inputs.backend,
            inputs.config,
            route_metadata,
            entry.name,
            naming.selector_labels(name, entry.component),
            list(entry.ports),
            entry.rollout,
            mirror,
            scales_to_zero=idle,
        )
    except TrafficError as error:
        raise PlanningError(entry.component, error.reason, str(error)) from error
    if traffic and idle and mirror and entry.rollout.in_canary:
        note = (
            f"metadata.annotations[{MIRROR_ANNOTATION}]: a component that scales to zero is routed through "
            "its own Service (the canary's share follows the replica ratio), so nothing is mirrored"
        )
        components[entry.component] = replace(entry, unsupported=(*entry.unsupported, note))
    url = f"http://{ingress_host(name, namespace, inputs.config.ingress.domain)}" if traffic else None
    return Plan(components, tuple(traffic), url)
