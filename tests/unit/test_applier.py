"""When an observed child still conforms to the plan: values the API server normalises, defaults it
leaves out, lists merged by key, and the lists Kubeserve owns whole."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.apply.applier import conforms, has_foreign_entries


@pytest.mark.parametrize(
    ("desired", "observed"),
    [
        ({"cpu": "0.5"}, {"cpu": "500m"}),
        ({"memory": "1024Mi"}, {"memory": "1Gi"}),
        ({"memory": "1e3"}, {"memory": "1k"}),
        ({"paused": False, "ports": []}, {}),
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}),
        ([{"name": "x", "value": "1"}], [{"name": "y"}, {"name": "x", "value": "1", "extra": True}]),
        (["--a", "--b"], ["--a", "--b"]),
    ],
)
def test_what_still_conforms(desired: Any, observed: Any) -> None:
    assert conforms(desired, observed)


@pytest.mark.parametrize(
    ("desired", "observed"),
    [
        ({"cpu": "0.5"}, {"cpu": "501m"}),
        ({"cpu": "1"}, {"cpu": "one"}),
        ({"replicas": 2}, {"replicas": 3}),
        ({"paused": True}, {}),
        (["--a", "--b"], ["--b", "--a"]),
        (["--a"], ["--a", "--b"]),
        ([{"name": "x", "value": "1"}], [{"name": "x", "value": "2"}]),
        ({"a": {"b": 1}}, {"a": "b"}),
        ({"hash": "4e16049127"}, {"hash": "5e16049127"}),
    ],
)
def test_what_no_longer_conforms(desired: Any, observed: Any) -> None:
    assert not conforms(desired, observed)


def service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": list(ports)}}


HTTP = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def test_a_services_ports_are_owned_whole() -> None:
    assert not has_foreign_entries(service(HTTP), service(HTTP))
    assert has_foreign_entries(service(HTTP), service(HTTP, {"name": "extra", "port": 81, "protocol": "TCP"}))
    assert has_foreign_entries(service(HTTP), service({**HTTP, "port": 9999}))
    assert has_foreign_entries(service(HTTP), {"kind": "Service", "metadata": {"name": "s"}, "spec": {}})
    deployment = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"ports": [1]}}
    assert not has_foreign_entries(deployment, {**deployment, "spec": {"ports": [1, 2]}})
