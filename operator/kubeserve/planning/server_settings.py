"""The component fields that only the model server can act on, and whether the chosen runtime does.

`containerConcurrency`, `timeout`, `logger` and `batcher` have no Kubernetes
object to become: KServe hands them to Knative's queue proxy or its own agent
sidecar, which Kubeserve does not run. Here they reach the model server through
the runtime's templates, as variables that are always defined (0 or empty when
unset, so `{% if %}` works). A runtime honours a field by reading its
variables; a field the service sets and its runtime never reads (or a
component of custom containers, which has no templates) is named in the
`FieldsSupported` condition, so it is never accepted and silently ignored.

KServe's multi-node `workerSpec` is accepted by the schema but not served: the
predictor is refused with reason `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeserve.api.components import ComponentSpec, PredictorSpec
from kubeserve.planning.runtime_selection import RuntimeChoice
from kubeserve.planning.templating import variables_read

DEFAULT_MAX_BATCH_SIZE = 32
"""KServe's batcher default when `batcher` is set without maxBatchSize."""
DEFAULT_MAX_BATCH_LATENCY = 5000
"""KServe's batcher default, in milliseconds, when `batcher` is set without maxLatency."""


def setting_variables(spec: ComponentSpec) -> dict[str, Any]:
    """The template variables of the component's server settings; 0 or "" for what it leaves unset."""
    logger, batcher = spec.logger, spec.batcher
    return {
        "container_concurrency": spec.container_concurrency or 0,
        "timeout": spec.timeout or 0,
        "logger_url": logger.url if logger else "",
        "logger_mode": logger.mode if logger else "",
        "max_batch_size": (batcher.max_batch_size or DEFAULT_MAX_BATCH_SIZE) if batcher else 0,
        "max_batch_latency": (batcher.max_latency or DEFAULT_MAX_BATCH_LATENCY) if batcher else 0,
        "batch_timeout": (batcher.timeout or 0) if batcher else 0,
    }


@dataclass(frozen=True)
class _Setting:
    field: str
    """The field under the component, as written in the spec."""
    variables: tuple[str, ...]
    """What a runtime must read to honour it."""
    is_set: Callable[[ComponentSpec], bool]


_SETTINGS = (
    # 0 is "no limit", which every server does without being told.
    _Setting("containerConcurrency", ("container_concurrency",), lambda s: bool(s.container_concurrency)),
    _Setting("timeout", ("timeout",), lambda s: s.timeout is not None),
    _Setting("logger", ("logger_url", "logger_mode"), lambda s: s.logger is not None),
    _Setting("batcher", ("max_batch_size", "max_batch_latency"), lambda s: s.batcher is not None),
    _Setting(
        "batcher.timeout",
        ("batch_timeout",),
        lambda s: s.batcher is not None and s.batcher.timeout is not None,
    ),
)


def unsupported_fields(component: str, spec: ComponentSpec, runtime: RuntimeChoice | None) -> tuple[str, ...]:
    """What of the component's server settings its runtime does not act on, one sentence each."""
    ignored = [setting for setting in _SETTINGS if setting.is_set(spec)]
    if runtime is not None:
        read = variables_read(runtime.runtime.spec.containers[0].to_dict())
        ignored = [setting for setting in ignored if not set(setting.variables) <= read]
    if not ignored:
        return ()
    fields = ", ".join(f"spec.{component}.{setting.field}" for setting in ignored)
    if runtime is None:
        return (f"{fields}: not acted on, since custom containers get no settings from Kubeserve",)
    variables = ", ".join(name for setting in ignored for name in setting.variables)
    return (
        f"{fields}: not acted on, since {runtime.runtime.kind} {runtime.runtime.name} does not read "
        f"{variables} in its templates",
    )


def unsupported_spec(component: str, spec: ComponentSpec) -> str | None:
    """Why the component cannot be served as written, or None."""
    if isinstance(spec, PredictorSpec) and spec.worker_spec is not None:
        return (
            f"spec.{component}.workerSpec (multi-node serving) is not supported by Kubeserve: "
            "remove it to serve the model with one pod per replica"
        )
    return None
