"""The operator's configuration from a ConfigMap, followed live: a change re-plans every service.

Only the one ConfigMap is watched (a `metadata.name` field selector, which
RBAC's resourceNames allow), so the operator needs no right to any other.
A change that does not parse is refused with the key named, in the log and
in a Warning Event on the ConfigMap, and the configuration in force stays:
a typo never takes GPU placement away from running services. Services the
change does not affect find nothing to write, so re-planning all of them is
cheap and needs no map of which key matters to whom.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi, NotLeader, TransportError
from kubeserve.apply.resources import CONFIG_MAP
from kubeserve.config import OperatorConfig, parse_config
from kubeserve.events import post_event, timestamp

CONFIG_KEY = "config.yaml"
WATCH_SECONDS = 300
RETRY_SECONDS = 2.0
logger = logging.getLogger(__name__)


class ConfigMapSource:
    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.current: OperatorConfig | None = None

    async def initial(self) -> OperatorConfig:
        """The starting configuration: defaults without the ConfigMap; a bad one stops the start."""
        found = await self.api.get(CONFIG_MAP, self.namespace, self.name)
        if found is None:
            logger.warning("ConfigMap %s/%s not found: using the defaults", self.namespace, self.name)
            self.current = OperatorConfig()
        else:
            self.current = parse_config(self._text(found))
        return self.current

    def _text(self, config_map: dict[str, Any]) -> str:
        return str((config_map.get("data") or {}).get(CONFIG_KEY, ""))

    async def follow(self, on_change: Callable[[OperatorConfig], None]) -> None:
        """Watch the ConfigMap until cancelled, re-connecting after each server timeout or failure."""
        version: str | None = None
        while True:
            params = {"fieldSelector": f"metadata.name={self.name}", "timeoutSeconds": str(WATCH_SECONDS)}
            if version:
                params["resourceVersion"] = version
            try:
                async for event in self.api.watch(CONFIG_MAP, self.namespace, params):
                    if event["type"] == "ERROR":  # 410 Gone: start again from the current state
                        version = None
                        break
                    version = event["object"]["metadata"].get("resourceVersion") or version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        await self._changed(event["object"], on_change)
                    elif event["type"] == "DELETED":
                        logger.warning(
                            "ConfigMap %s/%s deleted: the configuration in force stays",
                            self.namespace,
                            self.name,
                        )
            except (ApiError, TransportError) as error:
                logger.warning("watching ConfigMap %s/%s: %s", self.namespace, self.name, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _changed(self, config_map: dict[str, Any], on_change: Callable[[OperatorConfig], None]) -> None:
        try:
            config = parse_config(self._text(config_map))
        except ValueError as error:
            logger.error(
                "ConfigMap %s/%s refused, the configuration in force stays: %s",
                self.namespace,
                self.name,
                error,
            )
            await self._warn(config_map, str(error))
            return
        if config == self.current:
            return
        self.current = config
        logger.info(
            "configuration changed (ConfigMap %s/%s): re-planning every service", self.namespace, self.name
        )
        on_change(config)

    async def _warn(self, config_map: dict[str, Any], message: str) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", **config_map}
        try:
            await post_event(self.api, body, "Warning", "InvalidConfiguration", message, timestamp())
        except (ApiError, TransportError, NotLeader) as error:
            logger.debug("no event for the refused configuration: %s", error)
