"""Runtime container templates: sandboxed jinja2, KServe's Go-style references, errors naming the string."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api import ClusterServingRuntime
from kubeserve.planning.templating import TemplateContext, TemplateError, render, render_container

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


def test_jinja_expressions_filters_and_defaults_work() -> None:
    assert render("{{ 'kservev2' if protocol in ('v2', 'grpc-v2') else 'kserve' }}", CONTEXT) == "kservev2"
    assert render("{{ labels.missing | default('none') }}", CONTEXT) == "none"
    assert render("{{ labels.get('missing', 'fallback') }}", CONTEXT) == "fallback"
    assert render("{{ name | upper }}-{{ namespace }}", CONTEXT) == "IRIS-ml"
    assert (
        render("{% if annotations.owner %}--owner={{ annotations.owner }}{% endif %}", CONTEXT)
        == "--owner=ana"
    )
    assert render("{# a comment #}x", CONTEXT) == "x"


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
    with pytest.raises(TemplateError, match="'dict object' has no attribute 'nope'"):
        render("{{.Labels.nope}}", CONTEXT)


# --- errors ----------------------------------------------------------------------------------------


def test_undefined_name_is_an_error_naming_the_variable_and_the_string() -> None:
    with pytest.raises(TemplateError) as caught:
        render("--model_name={{ model_name }}", CONTEXT)
    assert str(caught.value) == "template '--model_name={{ model_name }}': 'model_name' is undefined"


def test_undefined_name_inside_an_expression_is_an_error_too() -> None:
    with pytest.raises(TemplateError, match="'replicas' is undefined"):
        render("{{ replicas + 1 }}", CONTEXT)


def test_syntax_error_names_the_string() -> None:
    with pytest.raises(TemplateError, match=r"^template '\{\{ name ': "):
        render("{{ name ", CONTEXT)


def test_runtime_errors_of_the_template_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="division by zero"):
        render("{{ 1 / 0 }}", CONTEXT)


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


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'a' * 1000000000 }}",
        "{{ [1] * 1000000000 }}",
        "{{ 1000000000 * 'a' }}",
        "{{ 10 ** 100000000 }}",
        "{{ range(1000000) | list }}",
    ],
)
def test_huge_results_are_refused_before_they_are_built(text: str) -> None:
    with pytest.raises(TemplateError, match=r"would build|too big"):
        render(text, CONTEXT)


def test_ordinary_arithmetic_is_allowed() -> None:
    assert render("{{ 1000 * 1000 * 1000 }} {{ 2 ** 10 }} {{ '-' * 3 }}", CONTEXT) == "1000000000 1024 ---"


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
    assert str(caught.value) == (
        "container 'kserve-container' args[1]: template '--bad={{ nope }}': 'nope' is undefined"
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


def test_every_shipped_runtime_renders() -> None:
    for path in sorted((REPO / "manifests" / "runtimes").glob("*.yaml")):
        runtime = ClusterServingRuntime.model_validate(yaml.safe_load(path.read_text()))
        for container in runtime.spec.containers:
            rendered = render_container(container.to_dict(), CONTEXT)
            strings = [*rendered.get("command", []), *rendered.get("args", [])]
            strings += [entry.get("value", "") for entry in rendered.get("env", [])]
            assert not any("{{" in s or "{%" in s for s in strings), (path.name, strings)


def test_shipped_runtime_templates_fill_in_the_service() -> None:
    runtime = ClusterServingRuntime.model_validate(
        yaml.safe_load((REPO / "manifests" / "runtimes" / "kubeserve-server.yaml").read_text())
    )
    args = render_container(runtime.spec.containers[0].to_dict(), CONTEXT)["args"]
    assert args[:3] == ["--model_name=iris", "--model_dir=/mnt/models", "--model_format=sklearn"]
