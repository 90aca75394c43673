"""Templates in a runtime's container strings, filled per InferenceService.

A runtime's container `command`, `args` and `env[].value` are jinja2 templates
over the service: `name`, `namespace`, `labels`, `annotations`, `model_dir`,
`model_format`, `protocol`, and the component's server settings
(`server_settings`: `container_concurrency`, `timeout`, `logger_url`, ...,
each 0 or empty when unset). A `command` or `args` entry whose template renders
to nothing is left out, so `{% if timeout %}--timeout={{ timeout }}{% endif %}`
adds the flag or nothing. A runtime honours a setting by reading its variable;
`variables_read` says which it reads, from the same checked parse that
rendering uses. Namespaced ServingRuntimes are written by
tenants, and the operator renders them for every namespace at once, so a
template may only cost a little, and may show nothing of the operator. Before
rendering, each template's parsed tree is checked against a small language:

- the variables above, a key of `labels` or `annotations` (`labels.team`,
  `annotations["example.com/tier"]`), and constants;
- `~` to join strings, `{% if %}`/`{% elif %}`/`{% else %}`, `x if c else y`,
  comparisons (`==`, `!=`, `<`, `in`, ...), `and`, `or`, `not`;
- the tests `defined`, `undefined`, `none`, and the filters `default`, `lower`,
  `upper`, `trim`, `string` and `replace`.

Everything else (loops, `set`, macros, calls such as `.format()` or `range()`,
arithmetic and `%` formatting, slices, other filters) is refused by name, and
the environment has no globals, so nothing of the operator can be printed.
Without loops or calls, rendering time is linear in the template. Sizes are
bounded too: a template is at most MAX_TEMPLATE (4 KiB) characters; a label or
annotation value it reads, a `replace` result and the rendered string are at
most MAX_RENDERED (4 KiB); and a whole map cannot be printed. Whatever a
template builds on the way is then at most its references times MAX_RENDERED:
a few MiB for the longest template. A template over a bound, like one outside
the language, is a TemplateError naming it. jinja2's immutable sandbox stays
underneath as a second wall. Undefined names and keys are errors, not empty
strings.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS

_MARKERS = ("{{", "{%", "{#")
MAX_TEMPLATE = 4096
"""Longest template string, in characters; a string without template markers is not limited."""
MAX_RENDERED = 4096
"""Longest rendered string, `replace` result, or label or annotation value a template reads."""

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
    container_concurrency: int = 0
    timeout: int = 0
    logger_url: str = ""
    logger_mode: str = ""
    max_batch_size: int = 0
    max_batch_latency: int = 0
    batch_timeout: int = 0


_VARIABLES = tuple(field.name for field in fields(TemplateContext))


class TemplateError(ValueError):
    """A template that does not render; the message quotes the template and says why."""


class _Keyed(dict[str, str]):
    """Labels or annotations as a template sees them: read one key at a time, never printed whole."""

    def __init__(self, what: str, items: Mapping[str, str]) -> None:
        super().__init__(items)
        self.what = what

    def __str__(self) -> str:
        raise SecurityError(f"{self.what} cannot be rendered whole; name a key, as in {self.what}.<key>")

    __repr__ = __str__


def _replace(value: object, old: object, new: object, count: int = -1) -> str:
    """jinja2's `replace`, refusing before it builds a result longer than MAX_RENDERED."""
    text, before, after = str(value), str(old), str(new)
    found = text.count(before) if before else len(text) + 1
    size = len(text) + (found if count < 0 else min(found, count)) * (len(after) - len(before))
    if size > MAX_RENDERED:
        raise SecurityError(f"replace would build {size} characters, more than {MAX_RENDERED}")
    return text.replace(before, after, count)


_FILTERS = {
    **{name: FILTERS[name] for name in ("default", "lower", "upper", "trim", "string")},
    "replace": _replace,
}
_TESTS = {name: TESTS[name] for name in ("defined", "undefined", "none")}

_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Concat,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Tuple,
    nodes.List,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
)
_CONSTRUCTS: dict[type[nodes.Node], str] = {
    nodes.For: "a 'for' loop",
    nodes.Assign: "'set'",
    nodes.AssignBlock: "'set'",
    nodes.Macro: "a macro",
    nodes.Slice: "a slice",
    nodes.Dict: "a dict literal",
}
_LANGUAGE = (
    "a runtime template may use only its variables, keys of labels and annotations, constants, '~', "
    f"if/else, comparisons, and/or/not, the tests {', '.join(_TESTS)} and the filters {', '.join(_FILTERS)}"
)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with no globals, only the allowed filters and tests, and keys for attributes.

    `labels.team` and `labels["team"]` both read a key; nothing else has attributes or items, so no
    method or Python internal is ever reached (printing one would show an address).
    """

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.globals.clear()
        self.filters = dict(_FILTERS)
        self.tests = dict(_TESTS)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj[argument]  # raises, naming what was undefined in the first place
        if not isinstance(obj, _Keyed):
            raise SecurityError(
                f"only labels and annotations have keys; {argument!r} of a {type(obj).__name__}"
            )
        if argument not in obj:
            return self.undefined(hint=f"{obj.what} has no key {argument!r}", obj=obj, name=argument)
        value = obj[argument]
        if len(value) > MAX_RENDERED:
            raise SecurityError(f"{obj.what} {argument!r} is longer than {MAX_RENDERED} characters")
        return value

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)


_ENV = _Sandbox()


def _describe(node: nodes.Node) -> str:
    if isinstance(node, nodes.Filter | nodes.Test):
        return f"{type(node).__name__.lower()} {node.name!r}"
    if isinstance(node, nodes.BinExpr | nodes.UnaryExpr):
        return f"operator {node.operator!r}"
    if isinstance(node, nodes.Call):
        callee = getattr(node.node, "attr", getattr(node.node, "name", None))
        return f"a call ({callee}(...))" if callee else "a call"
    return _CONSTRUCTS.get(type(node), f"'{type(node).__name__}'")


def _refusal(node: nodes.Node) -> str | None:
    """Why `node` is outside the allowed language, or None when it is inside."""
    if isinstance(node, nodes.Name) and node.name not in _VARIABLES:
        return f"{node.name!r} is undefined; the variables are {', '.join(_VARIABLES)}"
    if isinstance(node, nodes.Filter):
        allowed = node.name in _FILTERS
    elif isinstance(node, nodes.Test):
        allowed = node.name in _TESTS
    else:
        allowed = isinstance(node, _ALLOWED_NODES)
    return None if allowed else f"{_describe(node)} is not allowed; {_LANGUAGE}"


def _check(tree: nodes.Template) -> None:
    """Refuse the first construct or name of `tree` (in reading order) outside the allowed language."""
    pending: list[nodes.Node] = [tree]
    while pending:
        node = pending.pop()
        refusal = _refusal(node)
        if refusal:
            raise TemplateError(refusal)
        pending.extend(reversed(list(node.iter_child_nodes())))


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
            f".Labels.<key>, .Annotations.<key>, or the jinja2 names {', '.join(_VARIABLES)}"
        )
    return f"{opening}{expression}{closing}"


@lru_cache(maxsize=1024)
def _parse(text: str) -> nodes.Template:
    """The checked tree of `text`, Go actions rewritten; cached, as runtimes repeat."""
    if len(text) > MAX_TEMPLATE:
        raise TemplateError(f"longer than {MAX_TEMPLATE} characters, the most a runtime template may be")
    tree = _ENV.parse(_GO_ACTION.sub(_go_to_jinja, text))
    _check(tree)
    return tree


@lru_cache(maxsize=1024)
def _compile(text: str) -> Template:
    return _ENV.from_string(_parse(text))


def _quoted(text: str, most: int = 200) -> str:
    """`text` quoted for a message, cut short: a condition message has no room for a huge template."""
    return repr(text) if len(text) <= most else f"{text[:most]!r}... ({len(text)} characters)"


def _variables(context: TemplateContext) -> dict[str, Any]:
    """The context's fields by name; labels and annotations as `_Keyed` maps."""
    values = {name: getattr(context, name) for name in _VARIABLES}
    return {name: _Keyed(name, v) if isinstance(v, Mapping) else v for name, v in values.items()}


def render(text: str, context: TemplateContext) -> str:
    """`text` with its templates filled from `context`; a string without template markers as it is."""
    if not any(marker in text for marker in _MARKERS):
        return text
    try:
        rendered = _compile(text).render(_variables(context))
        if len(rendered) > MAX_RENDERED:
            raise TemplateError(f"renders {len(rendered)} characters, more than {MAX_RENDERED}")
        return rendered
    # A template is user input: whatever it raises (syntax, undefined name, refused construct,
    # a limit) is the template's fault, reported as such.
    except Exception as error:
        raise TemplateError(f"template {_quoted(text)}: {error}") from error


def _templated(container: Mapping[str, Any]) -> Iterator[tuple[str, Any, int | str]]:
    """(where, holder, key) of each templated string of `container`, `holder[key]`: its `command` and
    `args` entries and its `env[].value`s."""
    where = f"container {container.get('name', '')!r}"
    for field in ("command", "args"):
        values = container.get(field) or []
        for index in range(len(values)):
            yield f"{where} {field}[{index}]", values, index
    for entry in container.get("env") or []:
        if isinstance(entry.get("value"), str):
            yield f"{where} env {entry.get('name')}", entry, "value"


def render_container(container: dict[str, Any], context: TemplateContext) -> dict[str, Any]:
    """A deep copy of `container` with `command`, `args` and `env[].value` rendered, the rest as it was;
    a `command` or `args` entry that a template rendered to nothing is left out (an empty arg would
    reach the server as an argument of its own)."""
    rendered = copy.deepcopy(container)
    for where, holder, key in _templated(rendered):
        holder[key] = _render_at(holder[key], context, where)
    for field in ("command", "args"):
        if rendered.get(field):
            pairs = zip(rendered[field], container[field], strict=True)
            rendered[field] = [value for value, text in pairs if value or not text]
    return rendered


def variables_read(container: Mapping[str, Any]) -> frozenset[str]:
    """The variables that the templates of `container` read; a TemplateError as `render_container`
    raises for a template outside the language."""
    found: set[str] = set()
    for where, holder, key in _templated(container):
        text = holder[key]
        if any(marker in text for marker in _MARKERS):
            try:
                tree = _parse(text)
            except Exception as error:
                raise TemplateError(f"{where}: template {_quoted(text)}: {error}") from error
            found.update(node.name for node in tree.find_all(nodes.Name))
    return frozenset(found)


def _render_at(text: str, context: TemplateContext, where: str) -> str:
    try:
        return render(text, context)
    except TemplateError as error:
        raise TemplateError(f"{where}: {error}") from error
