"""A small async Kubernetes API client on httpx, with the credentials kopf itself logs in with.

kopf's own API client is private, and the `kubernetes` package blocks the
event loop; this one is async, speaks server-side apply, and is only as big as
the operator needs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import ssl
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import kopf

from kubeserve.apply.resources import Resource

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` several times per request; a failed import is not cached, so
    # each try searches sys.path again (most of the operator's CPU under load). None makes it fail fast.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

FIELD_MANAGER = "kubeserve"
MAX_CONNECTIONS = 20
USER_AGENT_PRODUCT = "kubeserve-operator"
"""Every request's User-Agent starts with this; the audit log tells the operator's writes apart by it."""
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


class ApiError(Exception):
    """A refused request, with the API server's own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying: throttling, conflicts, and server-side trouble."""
        return self.status in (409, 429) or self.status >= 500


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _tls_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_as_bytes(info.ca_data).decode())
    if info.certificate_path or info.certificate_data:
        # ssl loads client certificates only from files; inline data goes through a private temp dir.
        with tempfile.TemporaryDirectory() as private:
            cert = Path(os.fsdecode(info.certificate_path)) if info.certificate_path else Path(private, "c")
            key = Path(os.fsdecode(info.private_key_path)) if info.private_key_path else Path(private, "k")
            if info.certificate_data:
                cert.write_bytes(_as_bytes(info.certificate_data))
            if info.private_key_data:
                key.write_bytes(_as_bytes(info.private_key_data))
            context.load_cert_chain(cert, key)
    return context


def user_agent() -> str:
    """`kubeserve-operator/<version> (<host>/<pid>)`: the instance shows in the audit log.

    Two operators (an old one still stopping, a restarted one) share one identity;
    the host and PID let a test or a person see which instance sent a write.
    """
    try:
        release = version("kubeserve")
    except PackageNotFoundError:
        release = "unknown"
    return f"{USER_AGENT_PRODUCT}/{release} ({socket.gethostname()}/{os.getpid()})"


def _headers(info: kopf.ConnectionInfo) -> dict[str, str]:
    headers = {"User-Agent": user_agent()}
    if info.token:
        headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
    return headers


def connection_info(logger: kopf.Logger) -> kopf.ConnectionInfo:
    """In a pod, the ServiceAccount; elsewhere, the kubeconfig.

    kopf's own login handler would import the `kubernetes` package (or pykube)
    just to read the same files, and that import alone dominates the operator's
    memory, so kopf is given this one too.
    """
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings, logger=logger) or kopf.login_with_kubeconfig(
        settings=settings, logger=logger
    )
    if info is None:
        raise kopf.PermanentError("no credentials: neither a ServiceAccount nor a kubeconfig was found")
    return info


class KubeApi:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        # Requests wait here rather than in httpcore's pool, whose queue costs O(waiting) per request.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    @classmethod
    def from_connection(cls, info: kopf.ConnectionInfo) -> KubeApi:
        return cls(
            httpx.AsyncClient(
                base_url=info.server,
                verify=_tls_context(info),
                headers=_headers(info),
                timeout=httpx.Timeout(30.0, connect=5.0),
                limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
            )
        )

    @classmethod
    def from_environment(cls, logger: kopf.Logger) -> KubeApi:
        """With the same credentials kopf logs in with."""
        return cls.from_connection(connection_info(logger))

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, *, ok_missing: bool = False, **kwargs: Any) -> Any:
        async with self._slots:
            response = await self._http.request(method, path, **kwargs)
        if response.status_code == 404 and ok_missing:
            return None
        if response.is_error:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ApiError(response.status_code, message)
        return response.json()

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._send(
            "GET", resource.path(namespace, name), ok_missing=True
        )
        return result

    async def list(
        self, resource: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        result = await self._send("GET", resource.path(namespace), params=params)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def apply(
        self, resource: Resource, obj: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply with Kubeserve's one field manager, taking over conflicting fields."""
        metadata = obj["metadata"]
        result: dict[str, Any] = await self._send(
            "PATCH",
            resource.path(metadata.get("namespace"), metadata["name"], subresource),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": APPLY_CONTENT_TYPE},
        )
        return result

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, uid: str | None = None
    ) -> None:
        """Delete, only if the object is still the one we saw (by uid); a missing object is fine."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._send("DELETE", resource.path(namespace, name), ok_missing=True, json=body)
        except ApiError as error:
            if error.status != 409:
                raise

    async def create(self, resource: Resource, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("POST", resource.path(namespace), json=obj)
        return result

    async def serves(self, resource: Resource) -> bool:
        """Whether the cluster serves this resource (its CRD is installed), by discovery."""
        root = "/api/v1" if resource.api_version == "v1" else f"/apis/{resource.api_version}"
        found = await self._send("GET", root, ok_missing=True)
        return bool(found) and any(r.get("name") == resource.plural for r in found.get("resources", []))
