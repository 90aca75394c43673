"""Which serving runtime serves a model, with KServe's rules and a reason a person can read.

KServe users report being surprised by the runtime they get (KServe issues
#3632, #3180, #3073), so every choice carries a sentence saying what won and
what lost and by which rule, and every refusal says, runtime by runtime, why
none fits.

The rules:

- A runtime *fits* a model when it is enabled, single-model, lists the model's
  format name, and speaks the model's protocol. A version on both the model's
  format and the runtime's entry must be equal; a version on only one side
  matches any.
- The model's protocol is `ModelSpec.protocol`: an unset one is the format's
  default (v2 for triton and vllm, v1 otherwise), as KServe defaults it.
- `model.runtime` names the runtime: the namespace's ServingRuntime of that
  name, else the ClusterServingRuntime (a namespaced runtime shadows the
  cluster one even when it does not fit). It must fit; `autoSelect` is not
  needed. When no runtime has that name, the runtimes that list it in
  `aliases` are looked up the same way (ties by name): the shipped runtimes
  answer to KServe's runtime names so KServe manifests run unchanged.
- Otherwise the fitting runtimes whose matching format entry has
  `autoSelect: true` are ranked: namespaced before cluster, then higher
  `priority` (unset lowest), then name, so the choice never depends on the
  order the API server listed them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kubeserve.api.components import ModelSpec
from kubeserve.api.serving_runtime import ClusterServingRuntime, ServingRuntime, ServingRuntimeSpec

RuntimeKind = Literal["ServingRuntime", "ClusterServingRuntime"]

KSERVE_UNSERVED: dict[str, str] = {"kserve-pmmlserver": "pmml", "kserve-paddleserver": "paddle"}
"""KServe's shipped runtimes that no Kubeserve runtime stands in for, with the format each serves: a
manifest naming one (or its format) is told that Kubeserve lacks the server, not only that none fit."""


@dataclass(frozen=True)
class RuntimeCandidate:
    """A runtime as selection sees it: its kind and name, which the reason names, and its spec."""

    kind: RuntimeKind
    name: str
    spec: ServingRuntimeSpec

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime chosen for a model, and why, for the status and the Event."""

    runtime: RuntimeCandidate
    reason: str


class NoRuntimeFits(Exception):
    """No runtime can serve the model; the message names the format, protocol and every runtime's refusal."""


@dataclass(frozen=True)
class _Assessment:
    """One runtime judged against one model: why it cannot be used (empty when it can) and its rank."""

    candidate: RuntimeCandidate
    refusals: tuple[str, ...]
    priority: int | None
    lists_format: bool

    @property
    def rank(self) -> tuple[int, int, str]:
        return (self.candidate.kind != "ServingRuntime", -(self.priority or 0), self.candidate.name)

    def describe(self) -> str:
        """`ServingRuntime x priority 2`, or `ServingRuntime x (disabled)` when refused."""
        if self.refusals:
            return f"{self.candidate} ({'; '.join(self.refusals)})"
        priority = "without priority" if self.priority is None else f"priority {self.priority}"
        return f"{self.candidate} {priority}"


def _wanted(model: ModelSpec) -> str:
    """`sklearn` or `sklearn:1.3`, KServe's `name[:version]` notation."""
    fmt = model.model_format
    return fmt.name if fmt.version is None else f"{fmt.name}:{fmt.version}"


def _assess(candidate: RuntimeCandidate, model: ModelSpec, *, auto_select: bool) -> _Assessment:
    spec = candidate.spec
    fmt = model.model_format
    refusals: list[str] = []
    if spec.disabled:
        refusals.append("disabled")
    if spec.multi_model:
        refusals.append("multi-model; Kubeserve serves single-model runtimes")
    listed = [entry for entry in spec.supported_model_formats if entry.name == fmt.name]
    matching = [e for e in listed if fmt.version is None or e.version is None or e.version == fmt.version]
    selectable = [entry for entry in matching if entry.auto_select]
    if not listed:
        served = ", ".join(sorted({entry.name for entry in spec.supported_model_formats})) or "none"
        refusals.append(f"does not serve format {fmt.name} (serves {served})")
    elif not matching:
        versions = ", ".join(sorted({entry.version for entry in listed if entry.version is not None}))
        refusals.append(f"serves {fmt.name} only in version {versions}, not {fmt.version}")
    elif auto_select and not selectable:
        refusals.append(f"autoSelect is off for {fmt.name}; name it in model.runtime to use it")
    if model.protocol not in spec.supported_protocols:
        refusals.append(
            f"does not speak protocol {model.protocol} (speaks {', '.join(spec.supported_protocols)})"
        )
    priorities = [entry.priority for entry in selectable if entry.priority is not None]
    return _Assessment(
        candidate=candidate,
        refusals=tuple(refusals),
        priority=max(priorities, default=None),
        lists_format=bool(listed),
    )


def _why_ahead(winner: _Assessment, loser: _Assessment) -> str:
    """The rule that put `winner` before `loser`, for the reason string."""
    if winner.candidate.kind != loser.candidate.kind:
        return "namespaced runtimes come first"
    if winner.priority != loser.priority:
        return "higher priority wins"
    return "same priority, first by name"


def _candidates(
    namespaced: Sequence[ServingRuntime], cluster: Sequence[ClusterServingRuntime]
) -> list[RuntimeCandidate]:
    return [
        *(RuntimeCandidate("ServingRuntime", r.metadata.name or "", r.spec) for r in namespaced),
        *(RuntimeCandidate("ClusterServingRuntime", r.metadata.name or "", r.spec) for r in cluster),
    ]


def _unserved(fmt: str) -> str:
    """Why a format KServe serves with a runtime Kubeserve lacks has no runtime here, or nothing."""
    kserve = [runtime for runtime, served in KSERVE_UNSERVED.items() if served == fmt]
    if not kserve:
        return ""
    return (
        f"; Kubeserve ships no runtime for {fmt} (KServe serves it with {kserve[0]}): serve the model "
        f"with custom containers, or add a ServingRuntime that lists {fmt}"
    )


def _by_name(name: str, candidates: list[RuntimeCandidate]) -> tuple[list[RuntimeCandidate], bool]:
    """The runtimes `name` may mean, the one to use first, and whether they were found by alias."""
    found = sorted((c for c in candidates if c.name == name), key=lambda c: c.kind != "ServingRuntime")
    if found:
        return found, False
    aliased = (c for c in candidates if name in (c.spec.aliases or ()))
    return sorted(aliased, key=lambda c: (c.kind != "ServingRuntime", c.name)), True


def _named(model: ModelSpec, name: str, candidates: list[RuntimeCandidate]) -> RuntimeChoice:
    """The runtime `model.runtime` names: the namespaced one of that name, else the cluster one, else
    the same by alias."""
    found, by_alias = _by_name(name, candidates)
    asked = f"format {_wanted(model)} with protocol {model.protocol}"
    if not found:
        missing = (
            f"model.runtime names {name!r}, but there is no ServingRuntime {name!r} in the namespace "
            f"and no ClusterServingRuntime {name!r}, and no runtime lists it in aliases (model wants {asked})"
        )
        if name in KSERVE_UNSERVED:
            missing += f"; {name} is KServe's runtime for format {KSERVE_UNSERVED[name]}"
            missing += _unserved(KSERVE_UNSERVED[name])
        raise NoRuntimeFits(missing)
    runtime, *others = found
    named = f"{name!r}, an alias of {runtime}" if by_alias else str(runtime)
    assessment = _assess(runtime, model, auto_select=False)
    if assessment.refusals:
        unset = (
            f"; protocolVersion is unset, which means {model.protocol} for format {model.model_format.name}: "
            "set one the runtime speaks"
            if model.protocol_version is None and model.protocol not in runtime.spec.supported_protocols
            else ""
        )
        shadowing = f"; it shadows {', '.join(map(str, others))}, not considered" if others else ""
        raise NoRuntimeFits(
            f"model.runtime names {named}, which cannot serve {asked}: "
            f"{'; '.join(assessment.refusals)}{unset}{shadowing}"
        )
    if not by_alias:
        return RuntimeChoice(runtime, "named by model.runtime")
    reason = f"model.runtime names {named}"
    if others:
        reason += f" (first of the runtimes with that alias; also {', '.join(map(str, others))})"
    return RuntimeChoice(runtime, reason)


def _auto_selected(model: ModelSpec, candidates: list[RuntimeCandidate]) -> RuntimeChoice:
    assessments = sorted((_assess(c, model, auto_select=True) for c in candidates), key=lambda a: a.rank)
    eligible = [a for a in assessments if not a.refusals]
    asked = f"{_wanted(model)} ({model.protocol})"
    if not eligible:
        fmt = model.model_format.name
        if assessments and not any(a.lists_format for a in assessments):
            raise NoRuntimeFits(
                f"no runtime can be auto-selected for format {asked}: none lists {fmt}; considered: "
                f"{', '.join(str(a.candidate) for a in assessments)}{_unserved(fmt)}"
            )
        considered = (
            "; ".join(a.describe() for a in assessments)
            or "none, there is no ServingRuntime in the namespace and no ClusterServingRuntime"
        )
        raise NoRuntimeFits(f"no runtime can be auto-selected for format {asked}; considered: {considered}")
    winner, *others = eligible
    reason = f"auto-selected for {asked}: {winner.describe()}"
    if others:
        reason += " over " + ", ".join(f"{o.describe()} ({_why_ahead(winner, o)})" for o in others)
    # Runtimes that list the format but were refused are the ones a person expected; the rest is noise.
    refused = [a for a in assessments if a.refusals and a.lists_format]
    if refused:
        reason += "; not eligible: " + ", ".join(a.describe() for a in refused)
    return RuntimeChoice(winner.candidate, reason)


def select_runtime(
    model: ModelSpec, namespaced: Sequence[ServingRuntime], cluster: Sequence[ClusterServingRuntime]
) -> RuntimeChoice:
    """The runtime for `model` among the namespace's and the cluster's runtimes; NoRuntimeFits if none."""
    candidates = _candidates(namespaced, cluster)
    if model.runtime:
        return _named(model, model.runtime, candidates)
    return _auto_selected(model, candidates)
