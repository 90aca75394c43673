"""The InferenceService status, computed from the plan and the observed Deployments, pods and
ScaledObjects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeserve.api.inference_service import InferenceService
from kubeserve.api.status import PREVIOUS_REVISION_TAG
from kubeserve.planning.naming import LABEL_COMPONENT, LABEL_REVISION, component_name
from kubeserve.planning.plan import ComponentPlan, Plan, PlanningError
from kubeserve.planning.revisions import revision_name
from kubeserve.planning.rollout import CANARY, LABEL_TRACK, STABLE
from kubeserve.status.conditions import Verdict, all_ready, dated
from kubeserve.status.readiness import deployment_verdict


@dataclass(frozen=True)
class Observed:
    """The children of one service as last seen: Deployments by name, and its pods."""

    deployments: Mapping[str, Mapping[str, Any]]
    pods: Sequence[Mapping[str, Any]]
    scaled_objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """KEDA's ScaledObjects by name, with the status KEDA writes."""

    def pods_of(self, component: str, track: str) -> list[Mapping[str, Any]]:
        return track_pods(self.pods, component, track)


def track_pods(pods: Iterable[Mapping[str, Any]], component: str, track: str) -> list[Mapping[str, Any]]:
    """The pods of one component's track (stable or canary), by their labels."""
    wanted = {LABEL_COMPONENT: component, LABEL_TRACK: track}
    return [p for p in pods if wanted.items() <= (p["metadata"].get("labels") or {}).items()]


def condition_type(component: str, suffix: str = "Ready") -> str:
    return f"{component.capitalize()}{suffix}"


def _cluster_url(host: str, namespace: str) -> str:
    return f"http://{host}.{namespace}.svc.cluster.local"


def _runs(deployment: Mapping[str, Any] | None, service: str, component: str, revision: str) -> bool:
    """Whether the observed Deployment already runs `revision` (a Deployment just applied may not yet)."""
    template = (deployment or {}).get("spec", {}).get("template", {})
    digest = (template.get("metadata", {}).get("labels") or {}).get(LABEL_REVISION)
    return digest is None or revision_name(service, component, digest) == revision


SCALED_TO_ZERO = "ScaledToZero"


def _idle_verdict(kind: str, part: ComponentPlan, deployment: Mapping[str, Any] | None) -> Verdict | None:
    """Under scale to zero, a Deployment at 0 replicas with no pod Ready is idle, not broken: Ready, as
    the activator wakes it on the first request; unless no activator pod is there to do so."""
    if part.routing is None or deployment is None:
        return None
    wanted = deployment.get("spec", {}).get("replicas", 1)
    if wanted != 0 or deployment.get("status", {}).get("readyReplicas"):
        return None
    if part.routing == "nowhere":
        return Verdict(
            kind,
            "False",
            "ActivatorUnavailable",
            "scaled to zero, and the activator's Service has no Ready pod to hold a request and wake it: "
            "install the activator, or see its pods",
        )
    return Verdict(
        kind, "True", SCALED_TO_ZERO, "idle, scaled to zero: the first request wakes it (held meanwhile)"
    )


def _ready_verdict(parts: list[Verdict]) -> Verdict:
    """Ready over every part; an idle component's reason and message when all are Ready."""
    ready = all_ready("Ready", parts)
    idle = next((p for p in parts if p.reason == SCALED_TO_ZERO), None)
    return Verdict("Ready", "True", SCALED_TO_ZERO, idle.message) if ready.ok and idle else ready


def _canary_verdict(plan: ComponentPlan, verdict: Verdict) -> Verdict:
    """A canary that is not Ready says so, and that the stable revision keeps all the traffic meanwhile."""
    if verdict.ok:
        return verdict
    rollout = plan.rollout
    return Verdict(
        verdict.type,
        verdict.status,
        verdict.reason,
        f"canary {rollout.canary_revision} gets 0% of the traffic until it is Ready "
        f"({rollout.requested_percent}% requested); {rollout.stable_revision} keeps 100%: {verdict.message}",
    )


def _revisions(
    plan: ComponentPlan, stable: Verdict, canary: Verdict | None, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """Revision bookkeeping in Knative's terms, which KServe users read in `kubectl get isvc`.

    `stable` counts only when the stable Deployment already runs the planned stable revision.
    """
    rollout = plan.rollout
    new = plan.revision
    new_ready = (rollout.stable_takes_new and stable.ok) or (canary is not None and canary.ok)
    latest_ready = new if new_ready else previous.get("latestReadyRevision")
    if latest_ready is None and stable.ok:
        latest_ready = rollout.stable_revision
    latest_rolled_out = previous.get("latestRolledoutRevision")
    previous_rolled_out = previous.get("previousRolledoutRevision")
    if stable.ok and not rollout.in_canary and rollout.stable_revision != latest_rolled_out:
        previous_rolled_out, latest_rolled_out = latest_rolled_out, rollout.stable_revision
    if rollout.stable_revision == new:
        traffic = [{"revisionName": new, "percent": 100, "latestRevision": True}]
    else:
        traffic = [
            {
                "revisionName": rollout.stable_revision,
                "percent": rollout.stable_percent,
                "latestRevision": False,
                "tag": PREVIOUS_REVISION_TAG,
            },
            {"revisionName": new, "percent": rollout.canary_percent, "latestRevision": True},
        ]
    status = {
        "latestCreatedRevision": new,
        "latestReadyRevision": latest_ready,
        "latestRolledoutRevision": latest_rolled_out,
        "previousRolledoutRevision": previous_rolled_out,
        "traffic": traffic,
    }
    return {key: value for key, value in status.items() if value is not None}


def _hardening_verdict(plan: Plan) -> Verdict:
    """Whether the pods keep the `restricted` hardening; a service that loosens it still serves, so this
    is not part of Ready, but it is said (and, False, announced as a Warning)."""
    loosened = [f"{name}: {what}" for name, part in plan.components.items() for what in part.loosened]
    if loosened:
        return Verdict("PodHardened", "False", "HardeningLoosened", "; ".join(loosened))
    return Verdict("PodHardened", "True", "Restricted", "")


def _fields_verdict(plan: Plan) -> Verdict:
    """Whether every field the service sets is acted on; one that is not (a logger its runtime cannot
    send) does not stop the service from serving, so this is not part of Ready, but it is said (and,
    False, announced as a Warning)."""
    unsupported = [what for part in plan.components.values() for what in part.unsupported]
    if unsupported:
        return Verdict("FieldsSupported", "False", "UnsupportedField", "; ".join(unsupported))
    return Verdict("FieldsSupported", "True", "Supported", "")


AUTOSCALER_READY = "AutoscalerReady"
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
"""What the InferenceService's schema (as Kubernetes' own conditions) allows as a reason."""
_MESSAGE_LIMIT = 1024


def _keda_verdict(plan: Plan, scaled_objects: Mapping[str, Mapping[str, Any]]) -> Verdict | None:
    """KEDA's own verdict on the ScaledObjects it was given (a trigger it refuses, say). The pods keep
    their minimum replicas and serve, so this is not part of Ready, but KEDA's reason is said."""
    names = [o["metadata"]["name"] for o in plan.objects if o["kind"] == "ScaledObject"]
    if not names:
        return None
    waiting = []
    for name in names:
        conditions = (scaled_objects.get(name) or {}).get("status", {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") not in ("True", "False"):
            waiting.append(name)
        elif ready["status"] == "False":
            reason = str(ready.get("reason") or "")
            return Verdict(
                AUTOSCALER_READY,
                "False",
                reason if _REASON.fullmatch(reason) else "ScaledObjectNotReady",
                f"KEDA refuses ScaledObject {name}: {ready.get('message') or 'no message'}"[:_MESSAGE_LIMIT],
            )
    if waiting:
        return Verdict(
            AUTOSCALER_READY, "Unknown", "KedaPending", f"KEDA has not reported on {', '.join(waiting)} yet"
        )
    return Verdict(AUTOSCALER_READY, "True", "ScaledObjectReady", "")


def compute_status(
    service: InferenceService,
    plan: Plan | None,
    error: PlanningError | None,
    observed: Observed,
    now: str,
) -> dict[str, Any]:
    """The whole status object; its `url` is the plan's ingress URL when a gateway routes the service."""
    name = service.metadata.name or ""
    namespace = service.metadata.namespace or ""
    generation = service.metadata.generation
    previous = service.status.to_dict() if service.status else {}
    components = list(service.spec.components())
    verdicts: list[Verdict] = []
    component_status: dict[str, Any] = {}
    for component in components:
        kind = condition_type(component)
        if error is not None:
            verdicts.append(
                Verdict(
                    kind,
                    "False" if error.component == component else "Unknown",
                    error.reason if error.component == component else "Blocked",
                    error.message if error.component == component else f"{error.component} cannot be planned",
                )
            )
            continue
        assert plan is not None
        part = plan.components[component]
        stable_deployment = observed.deployments.get(part.name)
        stable = _idle_verdict(kind, part, stable_deployment) or deployment_verdict(
            kind, stable_deployment, observed.pods_of(component, STABLE)
        )
        verdicts.append(stable)
        canary = None
        if part.rollout.in_canary:
            canary = deployment_verdict(
                condition_type(component, "CanaryReady"),
                observed.deployments.get(f"{part.name}-canary"),
                observed.pods_of(component, CANARY),
            )
            verdicts.append(_canary_verdict(part, canary))
        stable_runs = _runs(stable_deployment, name, component, part.rollout.stable_revision)
        bookkept = stable if stable_runs else Verdict(kind, "Unknown", "RolloutPending")
        host = component_name(name, component)
        component_status[component] = {
            **_revisions(part, bookkept, canary, (previous.get("components") or {}).get(component, {})),
            "url": _cluster_url(host, namespace),
        }
    entry = component_name(name, "transformer" if "transformer" in components else "predictor")
    address = _cluster_url(entry, namespace)
    ingress_url = plan.ingress_url if plan else None
    ingress = Verdict("IngressReady", "True", "Routed" if ingress_url else "ClusterLocal", "")
    ready_parts = [v for v in verdicts if v.type in {condition_type(c) for c in components}] + [ingress]
    verdicts += [ingress, _ready_verdict(ready_parts)]
    if plan is not None:
        verdicts += [_hardening_verdict(plan), _fields_verdict(plan)]
        keda = _keda_verdict(plan, observed.scaled_objects)
        verdicts += [keda] if keda else []
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": dated(verdicts, previous.get("conditions") or [], now, generation),
        "url": ingress_url or address,
        "address": {"url": address},
        "components": component_status,
    }
    choice = plan.runtime if plan else None
    if choice is not None:
        status["runtime"] = {
            "name": choice.runtime.name,
            "kind": choice.runtime.kind,
            "reason": choice.reason,
        }
    return {key: value for key, value in status.items() if value not in (None, {})}
