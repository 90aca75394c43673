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

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi, NotLeader, TransportError
from kubeserve.apply.resources import CONFIG_MAP
from kubeserve.cache.list_watch import ListWatch
from kubeserve.config import OperatorConfig, parse_config
from kubeserve.events import post_event, timestamp

CONFIG_KEY = "config.yaml"
logger = logging.getLogger(__name__)


class ConfigMapSource(ListWatch):
    """The one ConfigMap, listed and watched by name; `on_change` hears each configuration that parses."""

    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        super().__init__(api, CONFIG_MAP, namespace, {"fieldSelector": f"metadata.name={name}"})
        self.name = name
        self.current: OperatorConfig | None = None
        self.on_change: Callable[[OperatorConfig], None] = lambda config: None

    async def initial(self) -> OperatorConfig:
        """The starting configuration: defaults without the ConfigMap; a bad one stops the start."""
        found = await self.api.get(CONFIG_MAP, self.namespace, self.name)
        if found is None:
            logger.warning("ConfigMap %s/%s not found: using the defaults", self.namespace, self.name)
            self.current = OperatorConfig()
        else:
            self.current = parse_config(self._text(found))
        return self.current

    def _text(self, config_map: Mapping[str, Any]) -> str:
        return str((config_map.get("data") or {}).get(CONFIG_KEY, ""))

    async def follow(self, on_change: Callable[[OperatorConfig], None]) -> None:
        """Follow the ConfigMap until cancelled."""
        self.on_change = on_change
        await self.run()

    async def received(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if event_type == "DELETED":
            logger.warning(
                "ConfigMap %s/%s deleted: the configuration in force stays", self.namespace, self.name
            )
            return
        try:
            config = parse_config(self._text(body))
        except ValueError as error:
            logger.error(
                "ConfigMap %s/%s refused, the configuration in force stays: %s",
                self.namespace,
                self.name,
                error,
            )
            await self._warn(body, str(error))
            return
        if config == self.current:
            return
        self.current = config
        logger.info(
            "configuration changed (ConfigMap %s/%s): re-planning every service", self.namespace, self.name
        )
        self.on_change(config)

    async def _warn(self, config_map: Mapping[str, Any], message: str) -> None:
        body = {**config_map, "apiVersion": "v1", "kind": "ConfigMap"}
        try:
            await post_event(self.api, body, "Warning", "InvalidConfiguration", message, timestamp())
        except (ApiError, TransportError, NotLeader) as error:
            logger.debug("no event for the refused configuration: %s", error)
