"""The activator's own small Kubernetes API client on aiohttp: GET, watch, merge patch.

The activator is an image of its own, so it neither imports the operator's client nor carries the
`kubernetes` package; it needs three verbs and the credentials of a pod (or a kubeconfig, for tests).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # bound ServiceAccount tokens are rotated by the kubelet, about hourly
WATCH_SECONDS = 300


class ApiError(Exception):
    """A refusal by the API server (status and its message), or no answer at all (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


@dataclass(frozen=True)
class Credentials:
    server: str
    tls: ssl.SSLContext
    token_file: Path | None = None
    token: str | None = None


def in_cluster() -> Credentials:
    """The pod's ServiceAccount, as every in-cluster client finds it."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ApiError(0, "not in a pod (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig")
    host = f"[{host}]" if ":" in host else host
    tls = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    return Credentials(f"https://{host}:{port}", tls, token_file=SERVICE_ACCOUNT / "token")


def from_kubeconfig(path: Path) -> Credentials:
    """The current context of a kubeconfig: CA, client certificate or token, by path or inline data."""
    config = yaml.safe_load(path.read_text())
    context = _named(config, "contexts", config["current-context"])["context"]
    cluster = _named(config, "clusters", context["cluster"])["cluster"]
    user = _named(config, "users", context["user"]).get("user", {})
    base = path.parent
    tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    elif "certificate-authority-data" in cluster:
        tls.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif "certificate-authority" in cluster:
        tls.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
    if "client-certificate-data" in user or "client-certificate" in user:
        # ssl loads client certificates only from files: inline data goes through a private temp dir.
        with tempfile.TemporaryDirectory() as private:
            cert, key = (
                _file(user, name, base, Path(private, name)) for name in ("client-certificate", "client-key")
            )
            tls.load_cert_chain(cert, key)
    token_file = base / user["tokenFile"] if "tokenFile" in user else None
    return Credentials(cluster["server"], tls, token_file=token_file, token=user.get("token"))


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry["name"] == name:
            return dict(entry)
    raise ApiError(0, f"kubeconfig: no entry {name!r} in {section}")


def _file(user: dict[str, Any], name: str, base: Path, spill: Path) -> Path:
    if f"{name}-data" in user:
        spill.write_bytes(base64.b64decode(user[f"{name}-data"]))
        return spill
    return Path(base, user[name])


class KubeApi:
    """GET, watch and merge patch against one API server; must be made with the event loop running."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._session = aiohttp.ClientSession(
            base_url=credentials.server,
            timeout=aiohttp.ClientTimeout(total=30.0, connect=5.0),
            connector=aiohttp.TCPConnector(ssl=credentials.tls, limit=10),
            headers={"User-Agent": "kubeserve-activator"},
        )
        self._token = credentials.token
        self._token_read = float("-inf")

    async def close(self) -> None:
        await self._session.close()
        await asyncio.sleep(0.1)  # TLS connections finish closing in the loop's next turns (aiohttp's advice)

    def _headers(self) -> dict[str, str]:
        token_file = self._credentials.token_file
        if token_file is not None and time.monotonic() - self._token_read > TOKEN_REREAD_SECONDS:
            self._token = token_file.read_text().strip()  # a few bytes from a tmpfs: no await needed
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._send("GET", path, params=params)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send(
            "PATCH", path, data=json.dumps(body), content_type="application/merge-patch+json"
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = self._headers() | ({"Content-Type": content_type} if content_type else {})
        try:
            async with self._session.request(
                method, path, params=params, data=data, headers=headers
            ) as response:
                status, text = response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise ApiError(0, f"{method} {path}: no answer: {error!r}") from error
        if status >= 400:
            raise ApiError(status, f"{method} {path}: {_message(text)}")
        result: dict[str, Any] = json.loads(text)
        return result

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it (after `WATCH_SECONDS`)."""
        query = params | {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=WATCH_SECONDS + 30)
        try:
            async with self._session.get(
                path, params=query, timeout=timeout, headers=self._headers()
            ) as response:
                if response.status >= 400:
                    raise ApiError(response.status, f"watch {path}: {_message(await response.text())}")
                # One event per line, a whole object each: may pass aiohttp's 128 KiB limit on lines.
                buffer = bytearray()
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while (end := buffer.find(b"\n")) >= 0:
                        line = bytes(buffer[:end])
                        del buffer[: end + 1]
                        if line.strip():
                            yield json.loads(line)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise ApiError(0, f"watch {path}: {error!r}") from error


def _message(text: str) -> str:
    """The API server's own words from its Status body, else the body as it came."""
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text
