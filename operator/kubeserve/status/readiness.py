"""Whether a component's Deployment serves, read from what the controllers and the scheduler report.

KServe's raw mode reads the Deployment's Available, Progressing and
ReplicaFailure conditions; Kubeserve also reads the pods' PodScheduled
condition, so that a GPU request no node can satisfy says so in seconds
instead of waiting out the progress deadline, and the pods' failing containers,
so that an image the node lacks or a model that does not load says so too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeserve.status.conditions import Verdict


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in obj.get("status", {}).get("conditions") or []}


def unschedulable_message(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The scheduler's own words for the first pod it could not place."""
    for pod in pods:
        scheduled = _conditions(pod).get("PodScheduled")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return f"pod {pod['metadata']['name']} cannot be scheduled: {scheduled.get('message', '')}"
    return None


def unready_message(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the first running pod that is not Ready is not, as the kubelet put it (unready containers)."""
    for pod in pods:
        ready = _conditions(pod).get("Ready")
        if pod.get("status", {}).get("phase") == "Running" and ready and ready.get("status") != "True":
            return f"pod {pod['metadata']['name']} is running but not Ready: {ready.get('message', '')}"
    return None


def container_failure(pods: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The first failing container of the pods, as (reason, message): the kubelet's waiting reason
    (ErrImageNeverPull, ImagePullBackOff, CrashLoopBackOff, ...) and, when the container ran and
    failed, its exit code and termination message: the model server writes its reason there, and
    for the containers Kubeserve plans (`FallbackToLogsOnError`) an empty message becomes the end of
    the log, such as the storage initializer's error line."""
    for pod in pods:
        status = pod.get("status", {})
        for key, what in (("initContainerStatuses", "init container"), ("containerStatuses", "container")):
            for container in status.get(key) or []:
                waiting = container.get("state", {}).get("waiting", {})
                terminated = container.get("lastState", {}).get("terminated", {})
                reason = waiting.get("reason") or terminated.get("reason") or "ContainerFailed"
                parts = [f"pod {pod['metadata']['name']}: {what} {container['name']}: {reason}"]
                if waiting.get("message"):
                    parts.append(waiting["message"].strip())
                if terminated:
                    ended = f"exited with code {terminated.get('exitCode')}"
                    message = (terminated.get("message") or "").strip()
                    parts.append(f"{ended}: {message}" if message else ended)
                return reason, "; ".join(parts)
    return None


def deployment_verdict(
    kind: str, deployment: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]
) -> Verdict:
    if deployment is None:
        return Verdict(kind, "Unknown", "Creating", "waiting for the Deployment to be created")
    name = deployment["metadata"]["name"]
    status = deployment.get("status", {})
    conditions = _conditions(deployment)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return Verdict(
            kind, "Unknown", "RolloutPending", f"Deployment {name} has not seen its latest spec yet"
        )
    failure = conditions.get("ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Verdict(kind, "False", failure.get("reason", "ReplicaFailure"), failure.get("message", ""))
    progressing = conditions.get("Progressing")
    if progressing and progressing.get("status") == "False":
        reason = progressing.get("reason", "ProgressDeadlineExceeded")
        return Verdict(kind, "False", reason, progressing.get("message", ""))
    wanted = deployment.get("spec", {}).get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    rolled_out = updated >= wanted and total <= updated and available >= min(wanted, 1)
    available_condition = conditions.get("Available", {}).get("status") == "True"
    if rolled_out and available_condition:
        return Verdict(kind, "True", "MinimumReplicasAvailable", "")
    pods = list(pods)
    pending = unschedulable_message(pods)
    if pending:
        return Verdict(kind, "False", "Unschedulable", pending)
    broken = container_failure(pods)
    if broken:
        return Verdict(kind, "False", *broken)
    progress = f"Deployment {name}: {available} of {wanted} replicas available, {updated} updated"
    unready = unready_message(pods)
    return Verdict(kind, "False", "RolloutInProgress", f"{progress}; {unready}" if unready else progress)
