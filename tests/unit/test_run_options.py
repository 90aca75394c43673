"""The operator's run options: bad values are refused with the flag named, before anything starts."""

from __future__ import annotations

import pytest

from kubeserve.config import parse_config
from kubeserve.leadership import LeaseTiming
from kubeserve.monitoring import parse_address
from kubeserve.options import RunOptions


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9090", ("0.0.0.0", 9090)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("8080", ("0.0.0.0", 8080)),
    ],
)
def test_http_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["host:", "host:port", ""])
def test_http_address_refused(address: str) -> None:
    with pytest.raises(ValueError, match="--http-address"):
        parse_address(address)


def test_leader_election_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="--operator-namespace"):
        RunOptions(leader_elect=True)
    with pytest.raises(ValueError, match="--operator-namespace"):
        RunOptions(config_map="kubeserve-config")
    assert (
        RunOptions(leader_elect=True, operator_namespace="kubeserve-system").lease_name
        == "kubeserve-operator"
    )


def test_lease_timing_keeps_the_writer_inside_its_lease() -> None:
    with pytest.raises(ValueError, match="retry < deadline < duration"):
        LeaseTiming(duration=10, deadline=10, retry=2)
    with pytest.raises(ValueError):
        LeaseTiming(duration=10, deadline=5, retry=6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("traffic: {backend: envoy}", "config.yaml: traffic.backend: Input should be 'auto', 'gateway'"),
        ("ingress: {domian: x}", "config.yaml: ingress.domian: Extra inputs are not permitted"),
        ("- a list", "config.yaml must be a mapping of keys, not list"),
        ("ingress: {domain: [", "config.yaml is not YAML"),
    ],
)
def test_bad_configuration_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_config(text)
    assert str(refused.value).startswith(message)


def test_configuration_parses_camel_case_keys() -> None:
    config = parse_config("storageInitializer: {image: example.com/init:2}\ntraffic: {backend: istio}")
    assert config.storage_initializer.image == "example.com/init:2"
    assert config.traffic.backend == "istio"
