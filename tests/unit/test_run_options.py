"""The operator's run options: bad values are refused with the flag named, before anything starts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import kopf
import pytest

from kubeserve.cli.run import UNUSED_CLIENTS
from kubeserve.cli.run import run as run_command
from kubeserve.config import load_config, parse_config
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


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    """What `kubeserve run ARGS` hands to kopf.run, which is not started."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    monkeypatch.setattr(logging.getLogger("kopf.objects"), "level", logging.getLogger("kopf.objects").level)
    for client in UNUSED_CLIENTS:  # restored afterwards: `run` hides them from kopf for good
        monkeypatch.setitem(sys.modules, client, sys.modules.get(client))
    run_command.main(list(args), standalone_mode=False)
    [kwargs] = calls
    return kwargs


def test_kopf_watches_its_crds_clusterwide_whatever_the_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf's one watch is of CRDs. Given namespaces, it would list and watch Namespace objects (which the
    chart does not grant) and, while none of them exists, never watch the CRDs; the namespaces go to
    Kubeserve's own watches only."""
    kwargs = _run(monkeypatch, "--namespace", "team-a", "--namespace", "!kube-system")
    assert kwargs["clusterwide"] is True and not kwargs.get("namespaces")
    assert kwargs["memo"].options.namespaces == ("team-a", "!kube-system")


def test_config_file_is_read_from_the_option_before_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given, named = tmp_path / "given.yaml", tmp_path / "named.yaml"
    given.write_text("ingress: {domain: given.example.org}")
    named.write_text("ingress: {domain: named.example.org}")
    monkeypatch.setenv("KUBESERVE_CONFIG", str(named))
    options: RunOptions = _run(monkeypatch, "--config", str(given))["memo"].options
    assert options.config_file == str(given)
    assert load_config(options.config_file).ingress.domain == "given.example.org"
    assert load_config(_run(monkeypatch)["memo"].options.config_file).ingress.domain == "named.example.org"


def test_config_file_must_exist_and_is_not_given_with_a_config_map(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(click.BadParameter, match="does not exist"):
        _run(monkeypatch, "--config", str(tmp_path / "missing.yaml"))
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(click.UsageError, match="--config and --config-map"):
        _run(
            monkeypatch,
            "--config",
            str(tmp_path / "config.yaml"),
            "--config-map",
            "c",
            "--operator-namespace",
            "k",
        )
