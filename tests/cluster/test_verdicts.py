"""Every InferenceService the API server accepts gets a verdict: random mutations of the examples,
applied to the real API server, are each either refused there or given a Ready condition, True or
False with a reason, within seconds. Nothing is left in between.

The mutations are drawn from a fixed seed (printed, and overridable with KUBESERVE_VERDICT_SEED), so a
failure replays: a value from a pool of awkward ones (empty, huge, negative, wrong type, non-ASCII
digits, path climbing, names the API server's other types refuse) put at a random place of a random
example's spec, or a new key, or a metadata change (long names, bad labels, big annotations).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.cluster.isvc import EXAMPLES, GROUP, PLURAL, VERSION, Isvcs, example
from tests.polling import eventually

SEED = int(os.environ.get("KUBESERVE_VERDICT_SEED", "20261202"))
MUTATIONS = 80
VALUES: list[Any] = [
    "",
    "x" * 300,
    -1,
    0,
    1.5,
    10**12,
    True,
    None,
    {},
    [],
    {"unknown": 1},
    ["a"],
    "²",
    "../../evil",
    "BAD=NAME",
    "Bad_Name",
    "-1",
    "0.5",
    "http ",
    {"name": "http", "containerPort": 8080},
]
"""Values that some field of some child refuses."""


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent: Any = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value


def mutated(rng: random.Random, index: int) -> dict[str, Any]:
    """One mutation of one example, named `m-<index>` unless its name is what changed."""
    body = copy.deepcopy(example(rng.choice(sorted(p.name for p in EXAMPLES.glob("*.yaml")))))
    body["metadata"] = {"name": f"m-{index}"}
    kind = rng.random()
    if kind < 0.1:
        body["metadata"]["name"] = f"m-{index}-" + "n" * (rng.choice([44, 45, 55]) - len(f"m-{index}-"))
    elif kind < 0.2:
        body["metadata"][rng.choice(["labels", "annotations"])] = {
            rng.choice(["ok", "Bad Key", "a/b/c", "x" * 70]): rng.choice(["v", "bad value!", "y" * 70])
        }
    elif kind < 0.25:
        body["metadata"]["annotations"] = {
            rng.choice(
                ["serving.kubeserve.io/mirror-percent", "serving.kserve.io/deploymentMode"]
            ): rng.choice(["²", "101", "-5", "50", "Serverless", ""])
        }
    else:
        paths = [path for path in _paths(body["spec"]) if path]
        path = rng.choice(paths)
        if rng.random() < 0.2 and isinstance(_get(body["spec"], path), dict):
            path = (*path, rng.choice(["unknownField", "name", "port", "image"]))
        _set(body["spec"], path, copy.deepcopy(rng.choice(VALUES)))
    return body


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def test_every_accepted_mutation_gets_a_verdict(kube: k8s.ApiClient, namespace: str, operator: Path) -> None:
    print(f"seed {SEED} (KUBESERVE_VERDICT_SEED replays it)")
    rng = random.Random(SEED)
    api = k8s.CustomObjectsApi(kube)
    accepted: dict[str, dict[str, Any]] = {}
    refused = 0
    for index in range(MUTATIONS):
        body = mutated(rng, index)
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        except ApiException as error:
            assert error.status in (400, 422), error.body
            refused += 1
            continue
        accepted[body["metadata"]["name"]] = body
    assert accepted, "every mutation was refused: the test would prove nothing"
    isvcs = Isvcs(kube, namespace)

    def without_verdict() -> list[str]:
        missing = []
        for name in accepted:
            ready = isvcs.condition(name, "Ready")
            if ready is None or ready["status"] not in ("True", "False") or not ready.get("reason"):
                missing.append(name)
        return missing

    try:
        eventually(lambda: not without_verdict(), 30, "a verdict on every accepted mutation")
    except AssertionError:
        silent = {name: accepted[name] for name in without_verdict()}
        raise AssertionError(f"no verdict on {len(silent)}: {json.dumps(silent)[:4000]}") from None
    print(f"{len(accepted)} accepted, each with a verdict; {refused} refused by the API server")
