"""https:// and http:// downloads of one file, streamed to disk with httpx."""

import os
import ssl
from pathlib import Path

import httpx

from kubeserve_storage.env import flag
from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import HttpUri

_TIMEOUT = httpx.Timeout(30.0, read=300.0)
_CHUNK = 1 << 20


def _verification() -> ssl.SSLContext | bool:
    """TLS verification from HTTPS_VERIFY_SSL and SSL_CERT_FILE (see the package docstring)."""
    if not flag(os.environ, "HTTPS_VERIFY_SSL", default=True):
        return False
    ca_file = os.environ.get("SSL_CERT_FILE")
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise StorageError(f"SSL_CERT_FILE={ca_file!r} is not a readable CA bundle: {error}") from error


def download(uri: HttpUri, into: Path) -> None:
    """Save the URL's body as `into/<filename>`; any status other than 2xx is an error."""
    target = into / uri.filename
    try:
        with httpx.stream(
            "GET", uri.url, follow_redirects=True, timeout=_TIMEOUT, verify=_verification()
        ) as reply:
            if reply.status_code in (401, 403):
                raise StorageError(f"access denied (HTTP {reply.status_code}): the server refuses this URL")
            if reply.status_code == 404:
                raise StorageError("not found (HTTP 404): check the URL")
            if not reply.is_success:
                raise StorageError(f"the server answered HTTP {reply.status_code} {reply.reason_phrase}")
            with target.open("wb") as out:
                for chunk in reply.iter_bytes(_CHUNK):
                    out.write(chunk)
    except httpx.ConnectError as error:
        hint = " (set SSL_CERT_FILE to its CA, or HTTPS_VERIFY_SSL=0)" if "CERTIFICATE" in str(error) else ""
        raise StorageError(f"cannot connect: {error}{hint}") from error
    except httpx.HTTPError as error:
        raise StorageError(f"download failed: {error}") from error
