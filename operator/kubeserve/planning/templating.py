"""Templates in a runtime's container strings, filled per InferenceService.

A runtime's container `command`, `args` and `env[].value` are jinja2 templates
over the service: `name`, `namespace`, `labels`, `annotations`, `model_dir`,
`model_format` and `protocol`. ServingRuntimes are written by namespace users,
so templates run in jinja2's immutable sandbox (no Python internals, no
mutation), with undefined names an error rather than an empty string, and with
`*` and `**` refused when their result would be huge, so one runtime cannot
exhaust the operator's memory. Loops are bounded only by the sandbox's range
limit; whoever may write a ServingRuntime is trusted that far.

KServe's runtimes use Go templates over the service's metadata instead. An
action whose whole body is one of `.Name`, `.Namespace`, `.Labels.<key>` or
`.Annotations.<key>` (with optional `{{-`/`-}}` trim markers) is rewritten to
its jinja2 twin (`name`, `namespace`, `labels["<key>"]`, `annotations["<key>"]`)
before rendering. A jinja2 expression never starts with a dot, so the rewrite
cannot change a jinja2 template's meaning. Other Go references (`.Spec`, pipes,
`index`) are refused by name. Unlike Go, a missing label or annotation is an
error, not `<no value>`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MARKERS = ("{{", "{%", "{#")
_MAX_RESULT = 100_000
"""Largest string or list `*` may build, and the largest `**` result in bits."""

_GO_ACTION = re.compile(r"(\{\{-?\s*)\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\s*-?\}\})")
_GO_FIELDS = {"Name": "name", "Namespace": "namespace"}
_GO_MAPS = {"Labels": "labels", "Annotations": "annotations"}


@dataclass(frozen=True)
class TemplateContext:
    """What a template may refer to: the InferenceService's metadata and the model's facts."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    model_dir: str
    model_format: str
    protocol: str


class TemplateError(ValueError):
    """A template that does not render; the message quotes the template and says why."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` refused when they would build something huge."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                sized = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if sized and len(sequence) * count > _MAX_RESULT:
                    raise SecurityError(f"{operator!r} would build more than {_MAX_RESULT} items")
        elif isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > _MAX_RESULT:
            raise SecurityError(f"{operator!r} would build a number of more than {_MAX_RESULT} bits")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _go_to_jinja(match: re.Match[str]) -> str:
    opening, reference, closing = match.groups()
    head, *rest = reference.split(".")
    if head in _GO_FIELDS and not rest:
        expression = _GO_FIELDS[head]
    elif head in _GO_MAPS and len(rest) == 1:
        expression = f'{_GO_MAPS[head]}["{rest[0]}"]'
    else:
        raise TemplateError(
            f"Go template reference .{reference} is not supported; use .Name, .Namespace, "
            f".Labels.<key>, .Annotations.<key>, or the jinja2 names name, namespace, labels, "
            f"annotations, model_dir, model_format, protocol"
        )
    return f"{opening}{expression}{closing}"


@lru_cache(maxsize=1024)
def _compile(text: str) -> Template:
    """The jinja2 template of `text`, Go actions rewritten; cached, as runtimes repeat across services."""
    return _ENV.from_string(_GO_ACTION.sub(_go_to_jinja, text))


def render(text: str, context: TemplateContext) -> str:
    """`text` with its templates filled from `context`; a string without template markers as it is."""
    if not any(marker in text for marker in _MARKERS):
        return text
    try:
        return _compile(text).render(
            name=context.name,
            namespace=context.namespace,
            labels=dict(context.labels),
            annotations=dict(context.annotations),
            model_dir=context.model_dir,
            model_format=context.model_format,
            protocol=context.protocol,
        )
    # A template is user input: whatever it raises (syntax, undefined name, sandbox refusal,
    # division by zero, overflow) is the template's fault, reported as such.
    except Exception as error:
        raise TemplateError(f"template {text!r}: {error}") from error


def render_container(container: dict[str, Any], context: TemplateContext) -> dict[str, Any]:
    """A deep copy of `container` with `command`, `args` and `env[].value` rendered; the rest as it was."""
    rendered = copy.deepcopy(container)
    where = f"container {container.get('name', '')!r}"
    for field in ("command", "args"):
        for index, text in enumerate(rendered.get(field) or []):
            rendered[field][index] = _render_at(text, context, f"{where} {field}[{index}]")
    for entry in rendered.get("env") or []:
        if isinstance(entry.get("value"), str):
            entry["value"] = _render_at(entry["value"], context, f"{where} env {entry.get('name')}")
    return rendered


def _render_at(text: str, context: TemplateContext, where: str) -> str:
    try:
        return render(text, context)
    except TemplateError as error:
        raise TemplateError(f"{where}: {error}") from error
