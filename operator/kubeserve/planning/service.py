"""The Service of a component: port 80 to the serving container's first port, as in KServe."""

from __future__ import annotations

from typing import Any

HTTP_PORT = 80


def build_service(
    metadata: dict[str, Any], selector: dict[str, str], container_ports: list[dict[str, Any]]
) -> dict[str, Any]:
    first, *others = container_ports
    ports = [{"name": "http", "port": HTTP_PORT, "targetPort": first["containerPort"], "protocol": "TCP"}]
    ports += [
        {
            "name": p.get("name", f"port-{p['containerPort']}"),
            "port": p["containerPort"],
            "targetPort": p["containerPort"],
            "protocol": p.get("protocol", "TCP"),
        }
        for p in others
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }
