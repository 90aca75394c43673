"""Runtime selection: KServe's rules for named and auto-selected runtimes, and reasons a person can act on."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api import ClusterServingRuntime, ModelSpec, PredictorSpec, ServingRuntime
from kubeserve.planning.runtime_selection import NoRuntimeFits, RuntimeChoice, select_runtime

REPO = Path(__file__).resolve().parents[2]
AUTO: dict[str, Any] = {"autoSelect": True}


def model(name: str = "sklearn", version: str | None = None, **fields: Any) -> ModelSpec:
    fmt = {"name": name} if version is None else {"name": name, "version": version}
    return ModelSpec.model_validate({"modelFormat": fmt, "storageUri": "gs://bucket/model", **fields})


def runtime_spec(formats: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "supportedModelFormats": formats,
        "containers": [{"name": "kserve-container", "image": "registry.example.com/server:1"}],
        **fields,
    }


def sr(name: str, *formats: dict[str, Any], **fields: Any) -> ServingRuntime:
    return ServingRuntime.model_validate(
        {"metadata": {"name": name}, "spec": runtime_spec(list(formats), **fields)}
    )


def csr(name: str, *formats: dict[str, Any], **fields: Any) -> ClusterServingRuntime:
    return ClusterServingRuntime.model_validate(
        {"metadata": {"name": name}, "spec": runtime_spec(list(formats), **fields)}
    )


def fmt(name: str = "sklearn", **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


def chosen(choice: RuntimeChoice) -> tuple[str, str]:
    return choice.runtime.kind, choice.runtime.name


def refusal(
    model_spec: ModelSpec, namespaced: list[ServingRuntime], cluster: list[ClusterServingRuntime]
) -> str:
    with pytest.raises(NoRuntimeFits) as caught:
        select_runtime(model_spec, namespaced, cluster)
    return str(caught.value)


# --- model.runtime names the runtime ---------------------------------------------------------------


def test_named_namespaced_runtime_is_chosen_without_auto_select() -> None:
    choice = select_runtime(model(runtime="mine"), [sr("mine", fmt())], [csr("other", fmt(**AUTO))])
    assert chosen(choice) == ("ServingRuntime", "mine")
    assert choice.reason == "named by model.runtime"
    assert choice.runtime.spec.containers[0].image == "registry.example.com/server:1"


def test_named_cluster_runtime_is_chosen_when_the_namespace_has_none_of_that_name() -> None:
    choice = select_runtime(model(runtime="shared"), [sr("mine", fmt(**AUTO))], [csr("shared", fmt())])
    assert chosen(choice) == ("ClusterServingRuntime", "shared")
    assert choice.reason == "named by model.runtime"


def test_named_namespaced_runtime_comes_before_the_cluster_one_of_the_same_name() -> None:
    choice = select_runtime(
        model(runtime="same"), [sr("same", fmt())], [csr("same", fmt(priority=9, **AUTO))]
    )
    assert chosen(choice) == ("ServingRuntime", "same")


def test_named_runtime_ignores_priority_and_other_runtimes() -> None:
    choice = select_runtime(
        model(runtime="low"),
        [sr("high", fmt(priority=9, **AUTO))],
        [csr("low", fmt(autoSelect=False))],
    )
    assert chosen(choice) == ("ClusterServingRuntime", "low")


def test_named_runtime_that_does_not_exist_is_refused_naming_it() -> None:
    message = refusal(model(runtime="ghost"), [sr("mine", fmt(**AUTO))], [csr("shared", fmt(**AUTO))])
    assert "model.runtime names 'ghost'" in message
    assert "no ServingRuntime 'ghost' in the namespace" in message
    assert "no ClusterServingRuntime 'ghost'" in message
    assert "format sklearn with protocol v1" in message


def test_named_disabled_runtime_is_refused() -> None:
    message = refusal(model(runtime="off"), [sr("off", fmt(), disabled=True)], [])
    assert message == (
        "model.runtime names ServingRuntime off, which cannot serve format sklearn with protocol v1: disabled"
    )


def test_named_multi_model_runtime_is_refused() -> None:
    message = refusal(model(runtime="mm"), [], [csr("mm", fmt(), multiModel=True)])
    assert "ClusterServingRuntime mm" in message
    assert "multi-model; Kubeserve serves single-model runtimes" in message


def test_named_runtime_without_the_format_is_refused_listing_what_it_serves() -> None:
    message = refusal(model(runtime="xgb"), [sr("xgb", fmt("xgboost"), fmt("onnx"), fmt("xgboost"))], [])
    assert "does not serve format sklearn (serves onnx, xgboost)" in message


def test_named_runtime_with_no_formats_at_all_is_refused() -> None:
    message = refusal(model(runtime="empty"), [sr("empty")], [])
    assert "does not serve format sklearn (serves none)" in message


def test_named_runtime_with_another_version_of_the_format_is_refused() -> None:
    message = refusal(
        model(version="1", runtime="v2only"), [sr("v2only", fmt(version="2"), fmt(version="3"))], []
    )
    assert "format sklearn:1 with protocol v1" in message
    assert "serves sklearn only in version 2, 3, not 1" in message


@pytest.mark.parametrize(
    ("model_version", "entry_version"),
    [("1", "1"), ("1", None), (None, "1"), (None, None)],
    ids=["same", "runtime-any-version", "model-any-version", "neither"],
)
def test_versions_match_when_equal_or_unset_on_either_side(
    model_version: str | None, entry_version: str | None
) -> None:
    entry = fmt() if entry_version is None else fmt(version=entry_version)
    named = select_runtime(model(version=model_version, runtime="rt"), [sr("rt", entry)], [])
    auto = select_runtime(model(version=model_version), [sr("rt", {**entry, **AUTO})], [])
    assert chosen(named) == chosen(auto) == ("ServingRuntime", "rt")


def test_named_runtime_without_the_protocol_is_refused() -> None:
    message = refusal(
        model(runtime="rt", protocolVersion="v2"), [sr("rt", fmt(), protocolVersions=["v1", "grpc-v1"])], []
    )
    assert "cannot serve format sklearn with protocol v2" in message
    assert "does not speak protocol v2 (speaks v1, grpc-v1)" in message


def test_runtime_without_protocol_versions_speaks_v1_only() -> None:
    assert chosen(select_runtime(model(runtime="rt"), [sr("rt", fmt())], [])) == ("ServingRuntime", "rt")
    message = refusal(model(runtime="rt", protocolVersion="grpc-v2"), [sr("rt", fmt())], [])
    assert "does not speak protocol grpc-v2 (speaks v1)" in message


def test_model_without_protocol_counts_as_v1() -> None:
    message = refusal(model(runtime="rt"), [sr("rt", fmt(), protocolVersions=["v2"])], [])
    assert "does not speak protocol v1 (speaks v2)" in message
    assert message.endswith(
        "; protocolVersion is unset, which means v1 for format sklearn: set one the runtime speaks"
    )


@pytest.mark.parametrize(
    ("format_name", "expected"),
    [("triton", "v2"), ("vllm", "v2"), ("sklearn", "v1"), ("huggingface", "v1"), ("onnx", "v1")],
)
def test_unset_protocol_is_the_formats_default_as_kserve_has_it(format_name: str, expected: str) -> None:
    assert model(format_name).protocol == expected
    assert model(format_name, protocolVersion="grpc-v2").protocol == "grpc-v2"


def test_triton_without_protocol_selects_a_v2_only_runtime() -> None:
    cluster = [csr("triton", fmt("triton", priority=1, **AUTO), protocolVersions=["v2", "grpc-v2"])]
    choice = select_runtime(model("triton"), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "triton")
    assert choice.reason.startswith("auto-selected for triton (v2)")
    named = select_runtime(model("triton", runtime="triton"), [], cluster)
    assert chosen(named) == ("ClusterServingRuntime", "triton")


def test_a_set_protocol_overrides_the_formats_default() -> None:
    cluster = [csr("triton", fmt("triton", **AUTO), protocolVersions=["v2"])]
    message = refusal(model("triton", protocolVersion="v1"), [], cluster)
    assert message.startswith("no runtime can be auto-selected for format triton (v1)")
    assert "does not speak protocol v1 (speaks v2)" in message


# --- aliases (KServe's runtime names) --------------------------------------------------------------


def test_an_alias_names_the_runtime_that_lists_it() -> None:
    cluster = [csr("kubeserve-server", fmt(), aliases=["kserve-sklearnserver"]), csr("other", fmt(**AUTO))]
    choice = select_runtime(model(runtime="kserve-sklearnserver"), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "kubeserve-server")
    assert choice.reason == (
        "model.runtime names 'kserve-sklearnserver', an alias of ClusterServingRuntime kubeserve-server"
    )


def test_a_runtime_of_that_name_comes_before_an_alias() -> None:
    cluster = [csr("kubeserve-server", fmt(), aliases=["kserve-sklearnserver"])]
    namespaced = [sr("kserve-sklearnserver", fmt())]
    choice = select_runtime(model(runtime="kserve-sklearnserver"), namespaced, cluster)
    assert chosen(choice) == ("ServingRuntime", "kserve-sklearnserver")
    assert choice.reason == "named by model.runtime"
    cluster.append(csr("kserve-sklearnserver", fmt()))
    choice = select_runtime(model(runtime="kserve-sklearnserver"), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "kserve-sklearnserver")


def test_several_runtimes_with_one_alias_namespaced_first_then_by_name() -> None:
    cluster = [csr("b", fmt(), aliases=["shared"]), csr("a", fmt(), aliases=["shared"])]
    choice = select_runtime(model(runtime="shared"), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "a")
    assert choice.reason.endswith("(first of the runtimes with that alias; also ClusterServingRuntime b)")
    mine = [sr("z", fmt(), aliases=["shared"])]
    assert chosen(select_runtime(model(runtime="shared"), mine, cluster)) == ("ServingRuntime", "z")


def test_an_aliased_runtime_must_fit_and_the_refusal_names_the_alias() -> None:
    cluster = [csr("xgb", fmt("xgboost"), aliases=["kserve-xgbserver"])]
    message = refusal(model(runtime="kserve-xgbserver"), [], cluster)
    assert message == (
        "model.runtime names 'kserve-xgbserver', an alias of ClusterServingRuntime xgb, which cannot serve "
        "format sklearn with protocol v1: does not serve format sklearn (serves xgboost)"
    )


def test_an_unknown_name_says_aliases_were_looked_up_too() -> None:
    message = refusal(model(runtime="ghost"), [], [csr("rt", fmt(), aliases=["other"])])
    assert "no ClusterServingRuntime 'ghost', and no runtime lists it in aliases" in message


@pytest.mark.parametrize(
    ("name", "format_name"), [("kserve-pmmlserver", "pmml"), ("kserve-paddleserver", "paddle")]
)
def test_kserve_runtimes_kubeserve_lacks_are_named_with_their_format(name: str, format_name: str) -> None:
    message = refusal(model(format_name, runtime=name), [], shipped())
    assert f"{name} is KServe's runtime for format {format_name}" in message
    assert f"Kubeserve ships no runtime for {format_name} (KServe serves it with {name})" in message
    auto = refusal(model(format_name), [], shipped())
    assert auto.startswith(f"no runtime can be auto-selected for format {format_name} (v1): none lists")
    assert "ClusterServingRuntime kubeserve-server" in auto
    assert f"Kubeserve ships no runtime for {format_name} (KServe serves it with {name})" in auto


def test_a_format_nothing_lists_and_kserve_lacks_too_gets_no_kserve_hint() -> None:
    message = refusal(model("caffe"), [], [csr("rt", fmt(**AUTO))])
    assert message == (
        "no runtime can be auto-selected for format caffe (v1): none lists caffe; considered: "
        "ClusterServingRuntime rt"
    )


def test_named_runtime_lists_every_reason_it_is_refused() -> None:
    message = refusal(
        model(runtime="bad", protocolVersion="v2"),
        [sr("bad", fmt("onnx"), disabled=True, multiModel=True)],
        [],
    )
    assert message.endswith(
        "disabled; multi-model; Kubeserve serves single-model runtimes; "
        "does not serve format sklearn (serves onnx); does not speak protocol v2 (speaks v1)"
    )


def test_namespaced_runtime_that_does_not_fit_shadows_the_cluster_one() -> None:
    message = refusal(model(runtime="same"), [sr("same", fmt(), disabled=True)], [csr("same", fmt())])
    assert "ServingRuntime same" in message
    assert "disabled" in message
    assert message.endswith("; it shadows ClusterServingRuntime same, not considered")


# --- auto-selection --------------------------------------------------------------------------------


def test_auto_selects_the_only_fitting_runtime_and_says_so() -> None:
    choice = select_runtime(model(), [], [csr("kubeserve-server", fmt(priority=2, **AUTO))])
    assert chosen(choice) == ("ClusterServingRuntime", "kubeserve-server")
    assert (
        choice.reason == "auto-selected for sklearn (v1): ClusterServingRuntime kubeserve-server priority 2"
    )


def test_namespaced_runtime_beats_a_cluster_runtime_of_higher_priority() -> None:
    choice = select_runtime(
        model(), [sr("mine", fmt(priority=1, **AUTO))], [csr("shared", fmt(priority=9, **AUTO))]
    )
    assert chosen(choice) == ("ServingRuntime", "mine")
    assert choice.reason == (
        "auto-selected for sklearn (v1): ServingRuntime mine priority 1 over "
        "ClusterServingRuntime shared priority 9 (namespaced runtimes come first)"
    )


def test_higher_priority_wins_among_runtimes_of_one_kind() -> None:
    choice = select_runtime(
        model(),
        [],
        [
            csr("a-low", fmt(priority=1, **AUTO)),
            csr("z-high", fmt(priority=3, **AUTO)),
            csr("m", fmt(priority=2, **AUTO)),
        ],
    )
    assert chosen(choice) == ("ClusterServingRuntime", "z-high")
    assert choice.reason == (
        "auto-selected for sklearn (v1): ClusterServingRuntime z-high priority 3 over "
        "ClusterServingRuntime m priority 2 (higher priority wins), "
        "ClusterServingRuntime a-low priority 1 (higher priority wins)"
    )


def test_unset_priority_counts_lowest() -> None:
    choice = select_runtime(model(), [sr("a-unset", fmt(**AUTO)), sr("b-one", fmt(priority=1, **AUTO))], [])
    assert chosen(choice) == ("ServingRuntime", "b-one")
    assert "over ServingRuntime a-unset without priority (higher priority wins)" in choice.reason


def test_ties_are_broken_by_name_whatever_the_listing_order() -> None:
    runtimes = [
        sr("charlie", fmt(priority=2, **AUTO)),
        sr("alpha", fmt(priority=2, **AUTO)),
        sr("bravo", fmt(priority=2, **AUTO)),
    ]
    reasons = {select_runtime(model(), list(order), []).reason for order in itertools.permutations(runtimes)}
    assert reasons == {
        "auto-selected for sklearn (v1): ServingRuntime alpha priority 2 over "
        "ServingRuntime bravo priority 2 (same priority, first by name), "
        "ServingRuntime charlie priority 2 (same priority, first by name)"
    }


def test_ties_without_priority_are_broken_by_name() -> None:
    choice = select_runtime(model(), [], [csr("b", fmt(**AUTO)), csr("a", fmt(**AUTO))])
    assert chosen(choice) == ("ClusterServingRuntime", "a")
    assert (
        "ClusterServingRuntime a without priority over ClusterServingRuntime b without priority"
        in choice.reason
    )


@pytest.mark.parametrize("auto_select", [False, None], ids=["false", "unset"])
def test_runtime_without_auto_select_is_not_picked_and_the_reason_says_why(auto_select: bool | None) -> None:
    entry = fmt(priority=9) if auto_select is None else fmt(priority=9, autoSelect=auto_select)
    choice = select_runtime(model(), [sr("manual", entry)], [csr("auto", fmt(priority=1, **AUTO))])
    assert chosen(choice) == ("ClusterServingRuntime", "auto")
    assert choice.reason.endswith(
        "; not eligible: ServingRuntime manual "
        "(autoSelect is off for sklearn; name it in model.runtime to use it)"
    )


def test_disabled_and_multi_model_runtimes_are_skipped_and_named_in_the_reason() -> None:
    choice = select_runtime(
        model(),
        [sr("off", fmt(priority=9, **AUTO), disabled=True)],
        [csr("mm", fmt(priority=9, **AUTO), multiModel=True), csr("on", fmt(**AUTO))],
    )
    assert chosen(choice) == ("ClusterServingRuntime", "on")
    assert choice.reason == (
        "auto-selected for sklearn (v1): ClusterServingRuntime on without priority; not eligible: "
        "ServingRuntime off (disabled), "
        "ClusterServingRuntime mm (multi-model; Kubeserve serves single-model runtimes)"
    )


def test_runtimes_that_do_not_list_the_format_are_left_out_of_the_reason() -> None:
    choice = select_runtime(model(), [sr("xgb", fmt("xgboost", **AUTO))], [csr("sk", fmt(**AUTO))])
    assert chosen(choice) == ("ClusterServingRuntime", "sk")
    assert "xgb" not in choice.reason


def test_protocol_decides_between_runtimes_of_a_format() -> None:
    namespaced = [sr("v1-only", fmt(priority=5, **AUTO))]
    cluster = [csr("v2-too", fmt(priority=1, **AUTO), protocolVersions=["v1", "v2"])]
    assert chosen(select_runtime(model(), namespaced, cluster)) == ("ServingRuntime", "v1-only")
    choice = select_runtime(model(protocolVersion="v2"), namespaced, cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "v2-too")
    assert choice.reason == (
        "auto-selected for sklearn (v2): ClusterServingRuntime v2-too priority 1; not eligible: "
        "ServingRuntime v1-only (does not speak protocol v2 (speaks v1))"
    )


def test_version_decides_between_runtimes_and_the_matching_entry_gives_the_priority() -> None:
    cluster = [
        csr("old", fmt(version="1", priority=5, **AUTO), fmt(version="2", priority=1, **AUTO)),
        csr("new", fmt(version="2", priority=3, **AUTO)),
    ]
    choice = select_runtime(model(version="2"), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "new")
    assert (
        "for sklearn:2 (v1): ClusterServingRuntime new priority 3 over ClusterServingRuntime old priority 1"
        in choice.reason
    )
    assert chosen(select_runtime(model(version="1"), [], cluster)) == ("ClusterServingRuntime", "old")


def test_format_without_version_takes_the_highest_priority_of_the_runtime_entries() -> None:
    cluster = [
        csr("multi", fmt(version="1", priority=1, **AUTO), fmt(version="2", priority=4, **AUTO)),
        csr("single", fmt(priority=3, **AUTO)),
    ]
    choice = select_runtime(model(), [], cluster)
    assert chosen(choice) == ("ClusterServingRuntime", "multi")
    assert "ClusterServingRuntime multi priority 4" in choice.reason


def test_entry_without_auto_select_does_not_lend_its_priority() -> None:
    cluster = [
        csr("mixed", fmt(version="1", priority=9), fmt(version="2", priority=1, **AUTO)),
        csr("b", fmt(priority=2, **AUTO)),
    ]
    assert chosen(select_runtime(model(), [], cluster)) == ("ClusterServingRuntime", "b")


def test_no_runtime_at_all_is_refused_saying_so() -> None:
    message = refusal(model(), [], [])
    assert message == (
        "no runtime can be auto-selected for format sklearn (v1); considered: none, "
        "there is no ServingRuntime in the namespace and no ClusterServingRuntime"
    )


def test_no_fitting_runtime_is_refused_with_every_runtime_and_its_reason() -> None:
    message = refusal(
        model(version="1", protocolVersion="v2"),
        [sr("off", fmt(version="1", **AUTO), protocolVersions=["v2"], disabled=True)],
        [
            csr("manual", fmt(), protocolVersions=["v2"]),
            csr("onnx-only", fmt("onnx", **AUTO)),
            csr("old", fmt(version="0", **AUTO), protocolVersions=["v2"]),
        ],
    )
    assert message == (
        "no runtime can be auto-selected for format sklearn:1 (v2); considered: "
        "ServingRuntime off (disabled); "
        "ClusterServingRuntime manual (autoSelect is off for sklearn; name it in model.runtime to use it); "
        "ClusterServingRuntime old (serves sklearn only in version 0, not 1); "
        "ClusterServingRuntime onnx-only (does not serve format sklearn (serves onnx); "
        "does not speak protocol v2 (speaks v1))"
    )


def test_legacy_triton_key_gets_v2_like_the_triton_format() -> None:
    legacy = PredictorSpec.model_validate({"triton": {"storageUri": "s3://bucket/model"}}).effective_model()
    assert legacy is not None and legacy.protocol == "v2"


def test_legacy_framework_key_selects_like_model() -> None:
    legacy = PredictorSpec.model_validate({"xgboost": {"storageUri": "s3://bucket/model"}}).effective_model()
    assert legacy is not None
    choice = select_runtime(legacy, [], [csr("sk", fmt(**AUTO)), csr("xgb", fmt("xgboost", **AUTO))])
    assert chosen(choice) == ("ClusterServingRuntime", "xgb")
    assert choice.reason.startswith("auto-selected for xgboost (v1)")


# --- the runtimes Kubeserve ships ------------------------------------------------------------------


def shipped() -> list[ClusterServingRuntime]:
    paths = sorted((REPO / "manifests" / "runtimes").glob("*.yaml"))
    return [ClusterServingRuntime.model_validate(yaml.safe_load(path.read_text())) for path in paths]


@pytest.mark.parametrize(
    ("format_name", "protocol", "expected"),
    [
        ("sklearn", "v1", "kubeserve-server"),
        ("xgboost", "v2", "kubeserve-server"),
        ("lightgbm", "grpc-v2", "kubeserve-server"),
        ("onnx", "v2", "kubeserve-server"),
        ("tensorflow", "v1", "tensorflow-serving"),
        ("tensorflow", "v2", "triton"),
        ("pytorch", "v2", "torchserve"),
        ("triton", "v2", "triton"),
        ("triton", None, "triton"),
        ("huggingface", None, "kserve-huggingfaceserver"),
        ("huggingface", "v2", "kserve-huggingfaceserver"),
        ("vllm", None, "vllm"),
        ("mlflow", "v2", "mlserver"),
    ],
)
def test_shipped_runtimes_serve_their_formats(format_name: str, protocol: str | None, expected: str) -> None:
    fields = {} if protocol is None else {"protocolVersion": protocol}
    choice = select_runtime(model(format_name, **fields), [], shipped())
    assert chosen(choice) == ("ClusterServingRuntime", expected)


KSERVE_NAMES = {
    "kserve-sklearnserver": ("sklearn", "kubeserve-server"),
    "kserve-xgbserver": ("xgboost", "kubeserve-server"),
    "kserve-lgbserver": ("lightgbm", "kubeserve-server"),
    "kserve-predictiveserver": ("sklearn", "kubeserve-server"),
    "kserve-mlserver": ("sklearn", "mlserver"),
    "kserve-tritonserver": ("triton", "triton"),
    "kserve-tensorflow-serving": ("tensorflow", "tensorflow-serving"),
    "kserve-torchserve": ("pytorch", "torchserve"),
    "kserve-huggingfaceserver": ("huggingface", "kserve-huggingfaceserver"),
    "kserve-vllmserver": ("vllm", "vllm"),
}


@pytest.mark.parametrize("kserve_name", sorted(KSERVE_NAMES))
def test_kserve_runtime_names_reach_the_shipped_runtime_of_their_formats(kserve_name: str) -> None:
    format_name, expected = KSERVE_NAMES[kserve_name]
    protocol = {"protocolVersion": "v2"} if expected == "mlserver" else {}
    choice = select_runtime(model(format_name, runtime=kserve_name, **protocol), [], shipped())
    assert chosen(choice) == ("ClusterServingRuntime", expected)


def test_every_alias_is_claimed_by_one_shipped_runtime_and_names_none() -> None:
    runtimes = shipped()
    names = {r.metadata.name for r in runtimes}
    aliases = [alias for r in runtimes for alias in r.spec.aliases or []]
    assert len(aliases) == len(set(aliases))
    assert not names & set(aliases)
    assert set(aliases) | (names & set(KSERVE_NAMES)) == set(KSERVE_NAMES)


def test_shipped_runtimes_explain_why_triton_loses_onnx() -> None:
    choice = select_runtime(model("onnx", protocolVersion="v2"), [], shipped())
    assert choice.reason == (
        "auto-selected for onnx (v2): ClusterServingRuntime kubeserve-server priority 2 over "
        "ClusterServingRuntime triton priority 1 (higher priority wins)"
    )


def test_shipped_mlserver_serves_sklearn_only_when_named() -> None:
    choice = select_runtime(model(protocolVersion="v2"), [], shipped())
    assert chosen(choice) == ("ClusterServingRuntime", "kubeserve-server")
    assert "not eligible: ClusterServingRuntime mlserver (autoSelect is off for sklearn" in choice.reason
    named = select_runtime(model(protocolVersion="v2", runtime="mlserver"), [], shipped())
    assert chosen(named) == ("ClusterServingRuntime", "mlserver")
