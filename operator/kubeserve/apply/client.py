"""A small async Kubernetes API client on aiohttp, with the credentials kopf itself logs in with.

kopf's own API client is private, and the `kubernetes` package blocks the
event loop; this one is async, speaks server-side apply, and is only as big as
the operator needs. It is built on aiohttp, which kopf loads anyway: one HTTP
stack in memory, with a C parser (httpx cost several times its CPU per request
and, with requests queued, time in its pool that grew with the queue).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from kubeserve.apply import decoding
from kubeserve.apply.resources import Resource

FIELD_MANAGER = "kubeserve"
MAX_CONNECTIONS = 20
USER_AGENT_PRODUCT = "kubeserve-operator"
"""Every request's User-Agent starts with this; the audit log tells the operator's writes apart by it."""
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


CONTENT_REFUSALS = (
    "failed to convert new object",
    "quantities must match the regular expression",
    "failed to create typed patch object",
)
"""Words of a 500 that refuses what was sent, not the server's own trouble."""


class ApiError(Exception):
    """A refused request, with the API server's own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying: throttling, conflicts, and server-side trouble, but not a 500 that refuses
        the content (a conversion of a bad value), which would be refused again on every retry."""
        if self.status >= 500:
            return not any(words in self.message for words in CONTENT_REFUSALS)
        return self.status in (409, 429)

    @property
    def namespace_terminating(self) -> bool:
        """A write into a namespace being deleted: its services go with it, there is nothing to report."""
        return self.status == 403 and "because it is being terminated" in self.message


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


class TransportError(Exception):
    """The API server could not be reached or did not answer in time; worth retrying."""


class NotLeader(Exception):
    """A write was held back: this replica does not hold the leader lease (or no longer does)."""


def always() -> bool:
    return True


class KubeApi:
    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self._session = session
        self._server = server.rstrip("/")
        self.may_write: Callable[[], bool] = always
        """Asked before every write; leader election makes a replica without the lease read-only."""

    @classmethod
    def from_connection(cls, info: kopf.ConnectionInfo) -> KubeApi:
        """Must be called with the event loop running (aiohttp binds its session to it)."""
        return cls(
            aiohttp.ClientSession(
                headers=_headers(info),
                timeout=aiohttp.ClientTimeout(total=30.0, connect=5.0),
                connector=aiohttp.TCPConnector(ssl=_tls_context(info), limit=MAX_CONNECTIONS),
            ),
            info.server or "",
        )

    async def close(self) -> None:
        await self._session.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        ok_missing: bool = False,
        params: dict[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        guarded: bool = True,
    ) -> Any:
        if method != "GET" and guarded and not self.may_write():
            raise NotLeader(f"{method} {path}")
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(
                method,
                self._server + path,
                params=params,
                data=data,
                headers={"Content-Type": content_type} if data is not None else None,
            ) as response:
                status, text = response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise TransportError(f"{method} {path}: {error!r}") from error
        if status == 404 and ok_missing:
            return None
        if status >= 400:
            try:
                message = decoding.loads(text).get("message", text)
            except ValueError:
                message = text
            raise ApiError(status, message)
        return decoding.loads(text)

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

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        """One page of a list (`limit`, `continue`), with the list's `resourceVersion` and `continue`."""
        page: dict[str, Any] = await self._send("GET", resource.path(namespace), params=params)
        return page

    async def apply(
        self, resource: Resource, obj: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply with Kubeserve's one field manager, taking over conflicting fields."""
        metadata = obj["metadata"]
        result: dict[str, Any] = await self._send(
            "PATCH",
            resource.path(metadata.get("namespace"), metadata["name"], subresource),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=obj,
            content_type=APPLY_CONTENT_TYPE,
        )
        return result

    async def merge_patch(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch under Kubeserve's field manager: a list in it replaces the object's whole
        list, which server-side apply never does to entries another manager added."""
        metadata = obj["metadata"]
        result: dict[str, Any] = await self._send(
            "PATCH",
            resource.path(metadata.get("namespace"), metadata["name"]),
            params={"fieldManager": FIELD_MANAGER},
            body={key: value for key, value in obj.items() if key != "metadata"},
            content_type="application/merge-patch+json",
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
            await self._send("DELETE", resource.path(namespace, name), ok_missing=True, body=body)
        except ApiError as error:
            if error.status != 409:
                raise

    async def create(
        self, resource: Resource, namespace: str | None, obj: dict[str, Any], guarded: bool = True
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._send("POST", resource.path(namespace), body=obj, guarded=guarded)
        return result

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, obj: dict[str, Any], guarded: bool = True
    ) -> dict[str, Any]:
        """PUT: refused with 409 when `obj`'s resourceVersion is no longer current."""
        result: dict[str, Any] = await self._send(
            "PUT", resource.path(namespace, name), body=obj, guarded=guarded
        )
        return result

    async def watch(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it (`timeoutSeconds`)."""
        query = params | {"watch": "true", "allowWatchBookmarks": "true"}
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=5.0, sock_read=float(query["timeoutSeconds"]) + 30
        )
        try:
            async with self._session.get(
                self._server + resource.path(namespace), params=query, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise ApiError(response.status, await response.text())
                # Not aiohttp's line iterator: it refuses lines over 128 KiB, and an event is a whole object.
                pending = bytearray()
                async for chunk in response.content.iter_any():
                    pending += chunk
                    if b"\n" not in chunk:
                        continue
                    *lines, rest = pending.split(b"\n")
                    pending = bytearray(rest)
                    for line in lines:
                        if line.strip():
                            yield decoding.loads(line)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise TransportError(f"watch {resource.plural}: {error!r}") from error

    async def serves(self, resource: Resource) -> bool:
        """Whether the cluster serves this resource (its CRD is installed), by discovery."""
        root = "/api/v1" if resource.api_version == "v1" else f"/apis/{resource.api_version}"
        found = await self._send("GET", root, ok_missing=True)
        return bool(found) and any(r.get("name") == resource.plural for r in found.get("resources", []))
