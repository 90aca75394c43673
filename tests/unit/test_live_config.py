"""The ConfigMap is followed by the operator's one list-and-watch loop: an expired watch lists again,
and a watch the server ends at once is not retried in a tight loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import yaml

from kubeserve.apply.resources import Resource
from kubeserve.config import OperatorConfig
from kubeserve.live_config import CONFIG_KEY, ConfigMapSource


def _config_map(version: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "kubeserve-config", "namespace": "ops", "resourceVersion": version},
        "data": {CONFIG_KEY: yaml.safe_dump({"storageInitializer": {"image": image}})},
    }


class Server:
    """Lists the ConfigMap as it is now; each watch plays the next script (then ends at once)."""

    def __init__(self, *scripts: list[dict[str, Any]]) -> None:
        self.current = _config_map("10", "example.com/init:1")
        self.scripts = list(scripts)
        self.lists: list[dict[str, str]] = []
        self.watches: list[dict[str, str]] = []

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self.lists.append(params)
        return {
            "metadata": {"resourceVersion": self.current["metadata"]["resourceVersion"]},
            "items": [self.current],
        }

    async def watch(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        self.watches.append(params)
        for event in self.scripts.pop(0) if self.scripts else []:
            yield event


def test_an_expired_watch_lists_again_and_the_change_it_missed_is_applied() -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
    server = Server([gone])
    changes: list[OperatorConfig] = []

    async def scenario() -> None:
        source = ConfigMapSource(server, "ops", "kubeserve-config")  # type: ignore[arg-type]
        source.current = OperatorConfig.model_validate(
            {"storageInitializer": {"image": "example.com/init:1"}}
        )
        server.current = _config_map("20", "example.com/init:2")  # changed while the watch was away
        task = asyncio.create_task(source.follow(changes.append))
        for _ in range(100):
            if len(server.lists) == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert len(server.lists) == 2, "the 410 made it list again"
    assert all(p["fieldSelector"] == "metadata.name=kubeserve-config" for p in server.lists + server.watches)
    assert [c.storage_initializer.image for c in changes] == ["example.com/init:2"]


def test_a_watch_that_ends_at_once_is_not_reconnected_in_a_tight_loop() -> None:
    server = Server()

    async def scenario() -> None:
        source = ConfigMapSource(server, "ops", "kubeserve-config")  # type: ignore[arg-type]
        task = asyncio.create_task(source.follow(lambda config: None))
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(scenario())
    assert len(server.watches) == 1, f"{len(server.watches)} watches in 0.5 s"
