"""The status of an InferenceService: conditions, addresses, revisions and traffic, and the chosen runtime."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeserve.api.common import ApiModel

PREVIOUS_REVISION_TAG = "prev"
"""Tag of the traffic entry of the previous rolled-out revision; `kubectl get isvc` shows it as PREV."""

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A condition in the Kubernetes convention (PredictorReady, TransformerReady, Ready, ...)."""

    type: str
    """Type of the condition."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str | None = None
    """One-word CamelCase reason for the status, for example MinimumReplicasUnavailable or NoRuntime."""
    message: str | None = None
    """What happened and what to do about it, for a person."""
    last_transition_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When the status last changed, RFC 3339."""
    observed_generation: int | None = None
    """metadata.generation the condition was computed from."""


class Address(ApiModel):
    """An address of the service."""

    url: str | None = None
    """URL of the service inside the cluster."""


class TrafficTarget(ApiModel):
    """The share of a component's traffic that one revision gets."""

    revision_name: str | None = None
    """Name of the revision."""
    percent: int | None = Field(default=None, ge=0, le=100)
    """Percent of the traffic the revision gets."""
    latest_revision: bool | None = None
    """Whether this is the latest revision of the component."""
    tag: str | None = None
    """Tag of the entry; "prev" marks the previous rolled-out revision during a canary."""
    url: str | None = None
    """URL that reaches this revision alone, when the traffic backend offers one."""


class ComponentStatus(ApiModel):
    """Revisions and traffic of one component; a revision is named from a hash of its pod template."""

    latest_created_revision: str | None = None
    """Newest revision, ready or not."""
    latest_ready_revision: str | None = None
    """Newest revision whose pods are ready."""
    previous_rolledout_revision: str | None = None
    """Revision that had all the traffic before the latest rolled-out one."""
    latest_rolledout_revision: str | None = None
    """Newest revision that has had all of the traffic."""
    traffic: list[TrafficTarget] | None = None
    """How the component's traffic is split between revisions."""
    url: str | None = None
    """URL of the component inside the cluster."""


class RuntimeStatus(ApiModel):
    """The serving runtime chosen for the predictor's model, and why."""

    name: str | None = None
    """Name of the runtime."""
    kind: Literal["ServingRuntime", "ClusterServingRuntime"] | None = None
    """Whether the runtime is namespaced or cluster-wide."""
    reason: str | None = None
    """Why it was chosen: named by model.runtime, or auto-selected (with the candidates and priorities)."""


class InferenceServiceStatus(ApiModel):
    """The observed state of an InferenceService, written by the operator."""

    observed_generation: int | None = None
    """metadata.generation this status was computed from."""
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """PredictorReady, TransformerReady, ExplainerReady, IngressReady and Ready, with reasons to act on."""
    url: str | None = None
    """URL of the service: its entry component (the transformer if any, else the predictor)."""
    address: Address | None = None
    """Address of the service inside the cluster."""
    components: dict[str, ComponentStatus] | None = None
    """Revisions and traffic of each component, by component name (predictor, transformer, explainer)."""
    runtime: RuntimeStatus | None = None
    """The serving runtime chosen for the predictor's model."""
