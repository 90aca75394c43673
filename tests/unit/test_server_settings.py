"""containerConcurrency, timeout, logger and batcher reach the model server as flags through the runtime's
templates, or are named as not acted on; workerSpec is refused; the HPA and the Deployment strategy
take what the spec says."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeserve.api.serving_runtime import ServingRuntime
from kubeserve.planning.plan import Plan, PlanningError, plan_service
from kubeserve.status.announcements import announcements
from kubeserve.status.compute import Observed, compute_status
from tests.unit.planning_inputs import SKLEARN, inputs, service

BASE_ARGS = [
    "--model_name=iris",
    "--model_dir=/mnt/models",
    "--model_format=sklearn",
    "--http_port=8080",
    "--grpc_port=8081",
]
EVERY_SETTING = {
    "containerConcurrency": 4,
    "timeout": 30,
    "logger": {"url": "http://dumper.ml/", "mode": "request"},
    "batcher": {"maxBatchSize": 16, "maxLatency": 20},
}


def predictor(**fields: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SKLEARN)
    spec["predictor"].update(fields)
    return spec


def planned(spec: dict[str, Any], **overrides: Any) -> Plan:
    return plan_service(service(spec), inputs(**overrides))


def args_of(plan: Plan, name: str = "iris-predictor") -> list[str]:
    deployment = next(o for o in plan.objects if (o["kind"], o["metadata"]["name"]) == ("Deployment", name))
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_unset_settings_add_no_arg_at_all() -> None:
    plan = planned(SKLEARN)
    assert args_of(plan) == BASE_ARGS
    assert plan.components["predictor"].unsupported == ()


def test_every_setting_becomes_the_servers_flag() -> None:
    plan = planned(predictor(**EVERY_SETTING))
    assert args_of(plan) == [
        *BASE_ARGS,
        "--container_concurrency=4",
        "--request_timeout=30",
        "--log_payload_url=http://dumper.ml/",
        "--log_payload_mode=request",
        "--max_batch_size=16",
        "--max_batch_latency_ms=20",
    ]
    assert plan.components["predictor"].unsupported == ()


def test_a_batcher_without_values_gets_kserves_defaults_and_a_logger_logs_all_by_default() -> None:
    args = args_of(planned(predictor(batcher={}, logger={"url": "http://dumper.ml/"})))
    assert args[len(BASE_ARGS) :] == [
        "--log_payload_url=http://dumper.ml/",
        "--log_payload_mode=all",
        "--max_batch_size=32",
        "--max_batch_latency_ms=5000",
    ]


def test_container_concurrency_zero_is_no_limit_which_needs_no_flag() -> None:
    assert args_of(planned(predictor(containerConcurrency=0))) == BASE_ARGS


def test_a_runtime_that_reads_no_setting_is_named_with_each_field_the_service_sets() -> None:
    triton = {
        "predictor": {
            "containerConcurrency": 4,
            "logger": {"url": "http://dumper.ml/"},
            "model": {"modelFormat": {"name": "triton"}, "protocolVersion": "v2", "storageUri": "s3://m/t"},
        }
    }
    plan = planned(triton)
    assert plan.components["predictor"].unsupported == (
        "spec.predictor.containerConcurrency, spec.predictor.logger: not acted on, since "
        "ClusterServingRuntime triton does not read container_concurrency, logger_url, logger_mode in its "
        "templates",
    )
    # The service is still planned and served as it would be without them.
    assert not any("{" in arg for arg in args_of(plan))


def test_batcher_timeout_is_read_by_no_shipped_runtime() -> None:
    plan = planned(predictor(batcher={"maxBatchSize": 8, "timeout": 60}))
    (message,) = plan.components["predictor"].unsupported
    assert message.startswith("spec.predictor.batcher.timeout: not acted on, since ClusterServingRuntime ")
    assert "--max_batch_size=8" in args_of(plan)


def runtime(args: list[str]) -> ServingRuntime:
    return ServingRuntime.model_validate(
        {
            "metadata": {"name": "mine", "namespace": "ml"},
            "spec": {
                "supportedModelFormats": [{"name": "sklearn", "autoSelect": True, "priority": 9}],
                "containers": [{"name": "kserve-container", "image": "example/server:1", "args": args}],
            },
        }
    )


def test_a_runtime_honours_a_setting_by_reading_its_variables_anywhere_in_its_templates() -> None:
    # A half-read logger (no mode) is not honoured: the service asked for requests only.
    mine = runtime(["--limit={{ container_concurrency }}", "{{ 'log' if logger_url else '' }}"])
    plan = planned(
        predictor(containerConcurrency=2, logger={"url": "http://d/", "mode": "request"}),
        namespaced_runtimes=[mine],
    )
    assert args_of(plan) == ["--limit=2", "log"]
    assert plan.components["predictor"].unsupported == (
        "spec.predictor.logger: not acted on, since ServingRuntime mine does not read logger_url, "
        "logger_mode in its templates",
    )


def test_custom_containers_get_no_settings_and_are_told_so() -> None:
    spec = {
        **SKLEARN,
        "transformer": {"timeout": 10, "containers": [{"name": "t", "image": "example/transformer:1"}]},
    }
    plan = planned(spec)
    assert plan.components["transformer"].unsupported == (
        "spec.transformer.timeout: not acted on, since custom containers get no settings from Kubeserve",
    )
    assert plan.components["predictor"].unsupported == ()


def test_unsupported_fields_are_a_false_condition_and_a_warning_but_not_part_of_ready() -> None:
    isvc = service(predictor(batcher={"timeout": 60}))
    plan = plan_service(isvc, inputs())
    status = compute_status(isvc, plan, None, Observed({}, []), "now")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("Unknown", "Creating")
    fields = conditions["FieldsSupported"]
    assert (fields["status"], fields["reason"]) == ("False", "UnsupportedField")
    assert "spec.predictor.batcher.timeout" in fields["message"]
    warnings = [a for a in announcements({}, status) if a.type == "Warning"]
    assert [a.reason for a in warnings] == ["UnsupportedField"]
    assert "kubeserve-server" in warnings[0].message


def test_worker_spec_is_refused_by_name_before_a_runtime_is_looked_for() -> None:
    spec = {
        "predictor": {
            "model": {"modelFormat": {"name": "no-such-format"}, "storageUri": "pvc://llama/70b"},
            "workerSpec": {"pipelineParallelSize": 2, "tensorParallelSize": 1, "containers": []},
        }
    }
    with pytest.raises(PlanningError) as caught:
        planned(spec)
    assert (caught.value.component, caught.value.reason) == ("predictor", "Unsupported")
    assert "spec.predictor.workerSpec" in caught.value.message


def autoscaler(plan: Plan) -> dict[str, Any]:
    hpa: dict[str, Any] = next(o for o in plan.objects if o["kind"] == "HorizontalPodAutoscaler")
    return hpa


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"containerConcurrency": 10}, "10"),
        ({"containerConcurrency": 10, "scaleTarget": 3}, "3"),
        ({"containerConcurrency": 0}, "1"),
        ({}, "1"),
    ],
)
def test_container_concurrency_is_the_concurrency_target_unless_scale_target_says(
    fields: dict[str, Any], target: str
) -> None:
    plan = planned(predictor(maxReplicas=3, scaleMetric="concurrency", **fields))
    (metric,) = autoscaler(plan)["spec"]["metrics"]
    assert metric["pods"]["target"]["averageValue"] == target


def test_container_concurrency_leaves_a_cpu_target_alone() -> None:
    plan = planned(predictor(maxReplicas=3, containerConcurrency=10))
    (metric,) = autoscaler(plan)["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == 80


def test_deployment_strategy_keeps_ints_as_ints_and_percentages_as_strings() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}
    plan = planned(predictor(deploymentStrategy=strategy))
    deployment = next(o for o in plan.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == strategy
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert type(rolling["maxSurge"]) is int and type(rolling["maxUnavailable"]) is str
