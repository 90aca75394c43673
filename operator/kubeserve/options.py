"""What `kubeserve run` was asked to do beyond kopf's own settings, handed to the start-up handler."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from kubeserve.leadership import LeaseTiming


@dataclass(frozen=True)
class RunOptions:
    http_address: str | None = None
    leader_elect: bool = False
    operator_namespace: str | None = None
    lease_name: str = "kubeserve-operator"
    lease_timing: LeaseTiming = field(default_factory=LeaseTiming)
    config_file: str | None = None
    """The configuration file (`--config`); None falls back to $KUBESERVE_CONFIG, then the defaults."""
    config_map: str | None = None
    namespaces: tuple[str, ...] = ()
    """Watch only these namespaces (and cluster-scoped objects); all namespaces when empty."""

    def __post_init__(self) -> None:
        if (self.leader_elect or self.config_map) and not self.operator_namespace:
            raise ValueError("--leader-elect and --config-map need --operator-namespace (or POD_NAMESPACE)")
        if self.config_file and self.config_map:
            raise ValueError("--config and --config-map are two sources of the configuration: give one")

    @staticmethod
    def identity() -> str:
        """The pod's name in a cluster (unique among replicas), else host and PID."""
        return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
