"""Runtime container templates: a small jinja2 language with bounded cost, KServe's Go-style references,
errors naming the string."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api import ClusterServingRuntime
from kubeserve.planning.templating import (
    MAX_RENDERED,
    MAX_TEMPLATE,
    TemplateContext,
    TemplateError,
    render,
    render_container,
    variables_read,
)

REPO = Path(__file__).resolve().parents[2]

CONTEXT = TemplateContext(
    name="iris",
    namespace="ml",
    labels={"team": "fraud", "app.kubernetes.io/name": "iris", "items": "label-not-method"},
    annotations={"owner": "ana", "example.com/tier": "gold"},
    model_dir="/mnt/models",
    model_format="sklearn",
    protocol="v2",
)


def test_every_context_name_renders() -> None:
    text = (
        "{{ name }} {{ namespace }} {{ labels.team }} {{ annotations.owner }} "
        "{{ model_dir }} {{ model_format }} {{ protocol }}"
    )
    assert render(text, CONTEXT) == "iris ml fraud ana /mnt/models sklearn v2"


@pytest.mark.parametrize(
    "text",
    ["", "--http_port=8080", "plain { braces } and {single}", "50%", "${HOME}", "trailing newline\n"],
)
def test_strings_without_template_markers_come_back_identical(text: str) -> None:
    assert render(text, CONTEXT) is text


def test_rendering_keeps_surrounding_text_and_trailing_newline() -> None:
    assert render("--model={{ model_dir }}/model.joblib\n", CONTEXT) == "--model=/mnt/models/model.joblib\n"


def test_labels_and_annotations_with_special_keys_by_subscript() -> None:
    assert render('{{ labels["app.kubernetes.io/name"] }}', CONTEXT) == "iris"
    assert render("{{ annotations['example.com/tier'] }}", CONTEXT) == "gold"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 'kservev2' if protocol in ('v2', 'grpc-v2') else 'kserve' }}", "kservev2"),
        ("{{ protocol not in ['v1'] and model_format == 'sklearn' }}", "True"),
        ("{{ labels.missing | default('none') }}", "none"),
        ("{{ name | upper }}-{{ namespace }}", "IRIS-ml"),
        ("{{ (' ' ~ labels.team ~ ' ') | trim | replace('f', 'F') }}", "Fraud"),
        ("{{ model_dir | replace('/', '_', 1) }}", "_mnt/models"),
        ("{{ 'MIXED' | lower }}{{ 8080 | string }}", "mixed8080"),
        ("{% if annotations.owner %}--owner={{ annotations.owner }}{% endif %}", "--owner=ana"),
        ("{% if labels.x is defined %}x{% elif not labels.team is none %}team{% else %}-{% endif %}", "team"),
        ("{{ labels.items }} {{ annotations.keys | default('no key') }}", "label-not-method no key"),
        ("{{ namespace }}", "ml"),
        ("{# a comment #}x", "x"),
    ],
)
def test_the_allowed_language(text: str, expected: str) -> None:
    assert render(text, CONTEXT) == expected


# --- KServe's Go-style references ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.Name}}", "iris"),
        ("{{ .Namespace }}", "ml"),
        ("--model_name={{.Name}}", "--model_name=iris"),
        ("{{.Labels.team}}", "fraud"),
        ("{{ .Annotations.owner }}", "ana"),
        ("{{.Labels.items}}", "label-not-method"),
        ("{{.Name}}.{{.Namespace}}.svc", "iris.ml.svc"),
        ("{{.Name}} and {{ name }}", "iris and iris"),
        ("a {{- .Name -}} b", "airisb"),
    ],
)
def test_go_style_references_are_translated(text: str, expected: str) -> None:
    assert render(text, CONTEXT) == expected


@pytest.mark.parametrize(
    "reference",
    [".Spec.Predictor", ".Labels", ".Labels.a.b", ".Name.First", ".ObjectMeta"],
)
def test_other_go_references_are_refused_by_name(reference: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(f"--x={{{{{reference}}}}}", CONTEXT)
    message = str(caught.value)
    assert message.startswith(f"template '--x={{{{{reference}}}}}': ")
    assert f"Go template reference {reference} is not supported" in message
    assert ".Labels.<key>" in message


def test_go_reference_to_a_missing_label_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match="labels has no key 'nope'"):
        render("{{.Labels.nope}}", CONTEXT)


# --- errors ----------------------------------------------------------------------------------------


def test_undefined_name_is_an_error_naming_the_variable_and_the_string() -> None:
    with pytest.raises(TemplateError) as caught:
        render("--model_name={{ model_name }}", CONTEXT)
    assert str(caught.value) == (
        "template '--model_name={{ model_name }}': 'model_name' is undefined; "
        "the variables are name, namespace, labels, annotations, model_dir, model_format, protocol, "
        "container_concurrency, timeout, logger_url, logger_mode, max_batch_size, max_batch_latency, "
        "batch_timeout"
    )


def test_undefined_name_inside_an_expression_is_an_error_too() -> None:
    with pytest.raises(TemplateError, match="'replicas' is undefined"):
        render("{{ name ~ (replicas | default(1)) }}", CONTEXT)


def test_syntax_error_names_the_string() -> None:
    with pytest.raises(TemplateError, match=r"^template '\{\{ name ': "):
        render("{{ name ", CONTEXT)


def test_runtime_errors_of_the_template_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="'<' not supported between instances of 'str' and 'int'"):
        render("{{ name < 1 }}", CONTEXT)


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__.__init__.__globals__ }}",
        "{{ labels.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__ }}",
        "{{ self.__init__ }}",
        "{{ render.__globals__ }}",
        "{{ namespace.__len__ }}",
        "{{ labels.update({'team': 'x'}) }}",
        "{{ labels.pop('team') }}",
        "{{ labels.clear() }}",
        "{{ ''.format.__self__ }}",
    ],
)
def test_sandbox_escapes_are_refused(text: str) -> None:
    labels = {"team": "fraud"}
    context = TemplateContext("iris", "ml", labels, {}, "/mnt/models", "sklearn", "v1")
    with pytest.raises(TemplateError) as caught:
        render(text, context)
    assert str(caught.value).startswith(f"template {text!r}: ")
    assert labels == {"team": "fraud"}


HOSTILE = [
    ("{{ '%100000000d' % 1 }}", "operator '%' is not allowed"),
    ("{{ 'a'|center(100000000) }}", "filter 'center' is not allowed"),
    ("{{ 'a'.center(100000000) }}", "a call (center(...)) is not allowed"),
    (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "a 'for' loop is not allowed",
    ),
    ("{{ '%s' % (lipsum,) }}", "operator '%' is not allowed"),
    ("{{ 'a' * 1000000000 }}", "operator '*' is not allowed"),
    ("{{ 10 ** 100000000 }}", "operator '**' is not allowed"),
    ("{{ 1 / 0 }}", "operator '/' is not allowed"),
    ("{{ range(1000000) | list }}", "filter 'list' is not allowed"),
    ("{{ '{:>100000000}'.format(name) }}", "a call (format(...)) is not allowed"),
    ("{{ labels.get('team') }}", "a call (get(...)) is not allowed"),
    ("{% set x = name %}", "'set' is not allowed"),
    ("{% macro m() %}{% endmacro %}", "a macro is not allowed"),
    ("{{ name[::-1] }}", "a slice is not allowed"),
    ("{{ {'a': 1} }}", "a dict literal is not allowed"),
    ("{{ name is string }}", "test 'string' is not allowed"),
    ("{% include 'other' %}", "'Include' is not allowed"),
]


@pytest.mark.parametrize(("text", "words"), HOSTILE, ids=[words for _, words in HOSTILE])
def test_constructs_outside_the_language_are_refused_by_name_before_rendering(text: str, words: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(text, CONTEXT)
    message = str(caught.value)
    assert message.startswith(f"template {text!r}: {words}; a runtime template may use only its variables")
    assert "the filters default, lower, upper, trim, string, replace" in message


@pytest.mark.parametrize("name", ["lipsum", "range", "dict", "cycler", "joiner", "self", "loop"])
def test_no_globals_are_exposed(name: str) -> None:
    with pytest.raises(TemplateError, match=f"^template .*: '{name}' is undefined; the variables are name,"):
        render(f"{{{{ {name} }}}}", CONTEXT)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{{ name.upper }}", "only labels and annotations have keys; 'upper' of a str"),
        ("{{ ''.__class__ }}", "only labels and annotations have keys; '__class__' of a str"),
        ("{{ labels }}", "labels cannot be rendered whole; name a key, as in labels.<key>"),
        ("{{ annotations | string }}", "annotations cannot be rendered whole"),
        ("{{ name ~ (labels,) }}", "labels cannot be rendered whole"),
    ],
)
def test_nothing_but_the_values_is_ever_printed(text: str, words: str) -> None:
    """A method or a map printed would show the operator's addresses, or a map of up to 256 KiB."""
    with pytest.raises(TemplateError) as caught:
        render(text, CONTEXT)
    assert words in str(caught.value)
    assert "0x" not in str(caught.value)


def test_a_template_longer_than_the_limit_is_refused_and_quoted_short() -> None:
    text = "--x={{ name }}" + "y" * MAX_TEMPLATE
    with pytest.raises(TemplateError) as caught:
        render(text, CONTEXT)
    message = str(caught.value)
    assert message.endswith(
        f"({len(text)} characters): longer than 4096 characters, the most a runtime template may be"
    )
    assert len(message) < 400


def test_a_template_of_the_limit_renders() -> None:
    text = "{{ name }}" + "y" * (MAX_TEMPLATE - len("{{ name }}"))
    assert render(text, CONTEXT) == "iris" + "y" * (MAX_TEMPLATE - len("{{ name }}"))


def _with_annotation(value: str) -> TemplateContext:
    return TemplateContext("iris", "ml", {}, {"big": value, "small": "s"}, "/mnt/models", "sklearn", "v2")


def test_a_rendering_longer_than_the_limit_is_refused() -> None:
    context = _with_annotation("a" * 3000)
    assert render("{{ annotations.big }}", context) == "a" * 3000
    with pytest.raises(TemplateError, match=r"renders 6000 characters, more than 4096$"):
        render("{{ annotations.big ~ annotations.big }}", context)


def test_an_annotation_longer_than_the_limit_is_refused_only_when_read() -> None:
    context = _with_annotation("a" * (MAX_RENDERED + 1))
    assert render("{{ annotations.small }}", context) == "s"
    with pytest.raises(TemplateError, match=r"annotations 'big' is longer than 4096 characters$"):
        render("{{ annotations.big | trim }}", context)


def test_replace_refuses_to_build_more_than_the_limit() -> None:
    context = _with_annotation("a" * 2000)
    assert render("{{ annotations.big | replace('a', 'bb') }}", context) == "b" * 4000
    with pytest.raises(TemplateError, match=r"replace would build 6002 characters, more than 4096$"):
        render("{{ annotations.big | replace('', 'xx') }}", context)
    with pytest.raises(TemplateError, match="replace would build 6000 characters"):
        render("{{ annotations.big | replace('a', 'bbb') }}", context)


# --- containers ------------------------------------------------------------------------------------


def runtime_container() -> dict[str, Any]:
    return {
        "name": "kserve-container",
        "image": "registry.example.com/server:{{ name }}",
        "command": ["serve", "--dir={{ model_dir }}"],
        "args": ["--model_name={{.Name}}", "--port=8080", "--format={{ model_format }}"],
        "env": [
            {"name": "PROTOCOL", "value": "{{ protocol }}"},
            {"name": "STATIC", "value": "as-is"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "EMPTY"},
        ],
        "ports": [{"containerPort": 8080, "name": "http1"}],
        "readinessProbe": {"httpGet": {"path": "/{{ name }}", "port": 8080}},
    }


def test_render_container_renders_command_args_and_env_values_only() -> None:
    original = runtime_container()
    rendered = render_container(original, CONTEXT)
    assert rendered == {
        **runtime_container(),
        "command": ["serve", "--dir=/mnt/models"],
        "args": ["--model_name=iris", "--port=8080", "--format=sklearn"],
        "env": [
            {"name": "PROTOCOL", "value": "v2"},
            {"name": "STATIC", "value": "as-is"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "EMPTY"},
        ],
    }
    assert rendered["image"] == "registry.example.com/server:{{ name }}"
    assert rendered["readinessProbe"] == {"httpGet": {"path": "/{{ name }}", "port": 8080}}


def test_render_container_returns_an_independent_copy() -> None:
    original = runtime_container()
    before = copy.deepcopy(original)
    rendered = render_container(original, CONTEXT)
    rendered["ports"][0]["containerPort"] = 9000
    rendered["env"].append({"name": "NEW", "value": "x"})
    assert original == before


def test_render_container_without_templated_fields() -> None:
    container = {"name": "c", "image": "img"}
    assert render_container(container, CONTEXT) == {"name": "c", "image": "img"}


def test_render_container_error_names_the_container_and_the_field() -> None:
    container = {"name": "kserve-container", "args": ["--ok", "--bad={{ nope }}"]}
    with pytest.raises(TemplateError) as caught:
        render_container(container, CONTEXT)
    assert str(caught.value).startswith(
        "container 'kserve-container' args[1]: template '--bad={{ nope }}': 'nope' is undefined; "
    )


def test_render_container_env_error_names_the_variable() -> None:
    container = {"name": "c", "env": [{"name": "MODEL", "value": "{{ .Spec }}"}]}
    with pytest.raises(
        TemplateError, match=r"^container 'c' env MODEL: template '\{\{ \.Spec \}\}': Go template"
    ):
        render_container(container, CONTEXT)


def test_render_container_command_error_names_the_index() -> None:
    with pytest.raises(TemplateError, match=r"^container 'c' command\[0\]: "):
        render_container({"name": "c", "command": ["{{ x }}"]}, CONTEXT)


def test_an_arg_or_command_whose_template_renders_to_nothing_is_left_out() -> None:
    container = {
        "name": "c",
        "command": ["serve", "{% if timeout %}--fast{% endif %}"],
        "args": ["", "{% if timeout %}--timeout={{ timeout }}{% endif %}", "{{ logger_url }}", "--x"],
        "env": [{"name": "LOG", "value": "{{ logger_url }}"}],
    }
    rendered = render_container(container, CONTEXT)
    # A literal empty arg is the runtime's own and stays; an empty env value is a value.
    assert (rendered["command"], rendered["args"]) == (["serve"], ["", "--x"])
    assert rendered["env"] == [{"name": "LOG", "value": ""}]
    with_timeout = render_container(container, dataclasses.replace(CONTEXT, timeout=30))
    assert with_timeout["args"] == ["", "--timeout=30", "--x"]


def test_setting_variables_are_always_defined_and_empty_when_unset() -> None:
    text = (
        "{{ container_concurrency }} {{ timeout }} [{{ logger_url }}] [{{ logger_mode }}] "
        "{{ max_batch_size }} {{ max_batch_latency }} {{ batch_timeout }}"
    )
    assert render(text, CONTEXT) == "0 0 [] [] 0 0 0"


def test_variables_read_are_the_names_in_command_args_and_env_values_only() -> None:
    container = {
        **runtime_container(),
        "args": ["--model_name={{.Name}}", "{% if timeout > 0 %}--t={{ timeout }}{% endif %}", "--port=8080"],
        "env": [{"name": "L", "value": "{{ labels.team | default(logger_mode) }}"}, {"name": "EMPTY"}],
    }
    assert variables_read(container) == {"model_dir", "name", "timeout", "labels", "logger_mode"}
    assert variables_read({"name": "c", "image": "{{ max_batch_size }}"}) == frozenset()


def test_variables_read_refuses_what_rendering_refuses() -> None:
    with pytest.raises(TemplateError, match=r"^container 'c' args\[0\]: template .*'nope' is undefined"):
        variables_read({"name": "c", "args": ["{{ nope }}"]})


def test_every_shipped_runtime_renders() -> None:
    for path in sorted((REPO / "manifests" / "runtimes").glob("*.yaml")):
        runtime = ClusterServingRuntime.model_validate(yaml.safe_load(path.read_text()))
        for container in runtime.spec.containers:
            rendered = render_container(container.to_dict(), CONTEXT)
            strings = [*rendered.get("command", []), *rendered.get("args", [])]
            strings += [entry.get("value", "") for entry in rendered.get("env", [])]
            assert not any("{{" in s or "{%" in s for s in strings), (path.name, strings)


def _shipped(name: str) -> dict[str, Any]:
    runtime = ClusterServingRuntime.model_validate(
        yaml.safe_load((REPO / "manifests" / "runtimes" / f"{name}.yaml").read_text())
    )
    return render_container(runtime.spec.containers[0].to_dict(), CONTEXT)


def test_shipped_runtime_templates_fill_in_the_service() -> None:
    args = _shipped("kubeserve-server")["args"]
    assert args[:3] == ["--model_name=iris", "--model_dir=/mnt/models", "--model_format=sklearn"]
    env = {entry["name"]: entry.get("value") for entry in _shipped("torchserve")["env"]}
    assert env["TS_SERVICE_ENVELOPE"] == "kservev2"
    env = {entry["name"]: entry.get("value") for entry in _shipped("mlserver")["env"]}
    assert (env["MLSERVER_MODEL_NAME"], env["MLSERVER_MODEL_IMPLEMENTATION"]) == ("iris", "")
