"""hf:// against a hand-written fake of the Hugging Face Hub: a local HTTP server, written here, speaking
the part of the Hub API that huggingface_hub calls, as read from the client. It proves the initializer
against that reading of the API; a change in the real Hub's answers would not show here.

`snapshot_download` asks for the revision's commit (GET /api/models/<repo>/revision/<rev>), lists the
commit's files (GET /api/models/<repo>/tree/<commit>), then fetches each file with HEAD and GET on
/<repo>/resolve/<commit>/<path>. A weights file answers the HEAD with a redirect elsewhere, as the
Hub sends large files to its CDN. HF_ENDPOINT points the client at this server.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from kubeserve_storage import StorageError, fetch
from kubeserve_storage.__main__ import main
from tests.storage.model_files import MODEL, tree

TOKEN = "hf_test_token"
MAIN = {".gitattributes": b"*.safetensors filter=lfs\n", "model.safetensors": b"tensors", **MODEL}
V1 = {".gitattributes": b"", "model.joblib": b"old weights"}


def _commit(files: dict[str, bytes]) -> str:
    return hashlib.sha1(json.dumps(sorted(files.items()), default=bytes.hex).encode()).hexdigest()


@dataclass
class Repo:
    branches: dict[str, dict[str, bytes]]
    access: str = "public"
    """public, private (unknown to anyone without the token) or gated (the token must be sent)."""
    size_lie: int = 0
    """Added to the size the Hub announces for a weights file: the CDN then sends too few bytes."""

    def commits(self) -> dict[str, dict[str, bytes]]:
        return {_commit(files): files for files in self.branches.values()}


@dataclass
class FakeHub:
    repos: dict[str, Repo]
    url: str = ""
    cdn: str = ""
    authorizations: list[str | None] = field(default_factory=list)


class _HubServer(ThreadingHTTPServer):
    hub: FakeHub


class _Hub(BaseHTTPRequestHandler):
    server: _HubServer

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.hub.authorizations.append(self.headers.get("Authorization"))
        path = urlsplit(self.path).path
        if path.startswith("/cdn/"):
            return self._file(bytes.fromhex(path.removeprefix("/cdn/")), body, {})
        api = path.startswith("/api/models/")
        parts = path.removeprefix("/api/models/" if api else "/").split("/")
        if len(parts) < 4 or parts[2] not in ({"revision", "tree"} if api else {"resolve"}):
            return self._send(404, b"", {}, body)  # what the client asks besides: not needed to download
        repo_id, action, revision, rest = "/".join(parts[:2]), parts[2], unquote(parts[3]), parts[4:]
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound")
        sent = self.headers.get("Authorization")
        if sent == "Bearer hf_expired":  # refused whatever the repository, as the Hub does
            return self._send(
                401, b"", {"X-Error-Message": "Invalid credentials in Authorization header"}, body
            )
        if repo.access != "public" and sent != f"Bearer {TOKEN}":
            gated = repo.access == "gated"
            return self._error(403 if gated and sent else 401, "GatedRepo" if gated else "RepoNotFound")
        commits = repo.commits()
        files = repo.branches[revision] if revision in repo.branches else commits.get(revision)
        if files is None:
            return self._error(404, "RevisionNotFound")
        commit = _commit(files)
        if action == "revision":
            return self._json({"id": repo_id, "sha": commit})
        if action == "tree":
            folders = {str(Path(name).parent) for name in files} - {"."}
            return self._json(
                [{"type": "directory", "path": folder, "oid": "0" * 40} for folder in sorted(folders)]
                + [
                    {"type": "file", "path": name, "size": len(data), "oid": _etag(data)}
                    for name, data in files.items()
                ]
            )
        name = unquote("/".join(rest))
        if name not in files:
            return self._error(404, "EntryNotFound")
        headers = {"X-Repo-Commit": commit}
        if name.endswith(".safetensors"):  # to "the CDN", with the file's identity in the Hub's headers
            size = len(files[name]) + repo.size_lie
            headers |= {"X-Linked-Etag": f'"{_etag(files[name])}"', "X-Linked-Size": str(size)}
            headers["Location"] = f"{self.hub.cdn}/cdn/{files[name].hex()}"
            return self._send(302, b"", headers, body)
        return self._file(files[name], body, headers)

    def _file(self, data: bytes, body: bool, headers: dict[str, str]) -> None:
        self._send(200, data, {"ETag": f'"{_etag(data)}"', **headers}, body)

    def _json(self, value: Any) -> None:
        self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"}, True)

    def _error(self, status: int, code: str) -> None:
        self._send(status, b"{}", {"X-Error-Code": code, "Content-Type": "application/json"}, True)

    def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on results, not on access logs."""


def _etag(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@contextmanager
def _serve(hub: FakeHub) -> Iterator[str]:
    server = _HubServer(("127.0.0.1", 0), _Hub)
    server.hub = hub
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A Hub with a public repository of two branches, a private, a gated, an empty and two broken ones.

    The same handler also runs on a second port, another origin, as the CDN the Hub redirects to.
    """
    fake = FakeHub(
        {
            "acme/iris": Repo({"main": MAIN, "v1": V1}),
            "acme/private": Repo({"main": V1}, access="private"),
            "acme/gated": Repo({"main": V1}, access="gated"),
            "acme/empty": Repo({"main": {}}),
            "acme/short": Repo({"main": MAIN}, size_lie=1),
            "acme/climbs": Repo({"main": {"model.joblib": b"w", "../../escaped.txt": b"gotcha"}}),
        }
    )
    with _serve(fake) as fake.url, _serve(fake) as fake.cdn:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def test_downloads_every_file_of_the_default_branch(hub: FakeHub, tmp_path: Path) -> None:
    assert fetch("hf://acme/iris", tmp_path / "models") is True
    assert tree(tmp_path / "models") == MAIN  # the client's .cache/ bookkeeping is gone too
    assert [path.name for path in tmp_path.iterdir()] == ["models"]
    assert set(hub.authorizations) == {None}  # anonymous without HF_TOKEN


@pytest.mark.parametrize("revision", ["@v1", ":v1", f"@{_commit(V1)}"])
def test_revision_after_at_or_kserve_colon(hub: FakeHub, tmp_path: Path, revision: str) -> None:
    fetch(f"hf://acme/iris{revision}", tmp_path / "models")
    assert tree(tmp_path / "models") == V1


def test_into_an_existing_model_directory(hub: FakeHub, tmp_path: Path) -> None:
    """As into the emptyDir at /mnt/models: same-named entries replaced, no bookkeeping left."""
    dest = tmp_path / "models"
    (dest / "meta").mkdir(parents=True)
    (dest / "meta" / "stale.json").write_bytes(b"old")
    (dest / "model.joblib").write_bytes(b"old")
    fetch("hf://acme/iris", dest)
    assert tree(dest) == MAIN


@pytest.mark.parametrize("repo", ["acme/private", "acme/gated"])
def test_hf_token_opens_private_and_gated_repos(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    fetch(f"hf://{repo}", tmp_path / "models")
    assert tree(tmp_path / "models") == V1
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("uri", "token", "says"),
    [
        ("hf://acme/absent", None, "repository acme/absent not found (HTTP 404): check the name"),
        (
            "hf://acme/private",
            None,
            "repository acme/private not found or private (HTTP 401): check the name, "
            "or set HF_TOKEN to one that can read it",
        ),
        ("hf://acme/private", "hf_wrong", "not found or private (HTTP 401): HF_TOKEN cannot read it"),
        (
            "hf://acme/gated",
            None,
            "acme/gated is gated (HTTP 401): set HF_TOKEN to a token of an account that accepted",
        ),
        ("hf://acme/gated", "hf_wrong", "acme/gated is gated (HTTP 403): HF_TOKEN's account has not"),
        ("hf://acme/iris", "hf_expired", "access denied (HTTP 401): check HF_TOKEN"),
        ("hf://acme/iris@v9", None, "revision 'v9' not found in acme/iris (HTTP 404)"),
        ("hf://acme/empty", None, "acme/empty has no files at this revision"),
        ("hf://acme/short", None, "download failed: Consistency check failed"),
    ],
)
def test_refusals_say_what_to_fix_and_write_nothing(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, token: str | None, says: str
) -> None:
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    with pytest.raises(StorageError) as raised:
        fetch(uri, tmp_path / "models")
    assert says in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_that_climbs_out_is_refused_and_nothing_written(hub: FakeHub, tmp_path: Path) -> None:
    """A Hub (or a mirror) decides the file names; one with `..` would land beside the destination."""
    dest = tmp_path / "a" / "b" / "models"
    with pytest.raises(StorageError) as raised:
        fetch("hf://acme/climbs", dest)
    assert str(raised.value).startswith(
        "the Hub client refused the repository: Invalid filename '../../escaped.txt'"
    )
    assert list(tmp_path.rglob("*")) == [tmp_path / "a", tmp_path / "a" / "b"]


def test_unreachable_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(StorageError, match="cannot reach the Hub"):
        fetch("hf://acme/iris", tmp_path / "models")
    assert list(tmp_path.iterdir()) == []


def test_cli_exits_one_with_the_reason(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hf://acme/absent", str(tmp_path / "models")]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "kubeserve-storage: error: cannot fetch hf://acme/absent: "
            "repository acme/absent not found (HTTP 404): check the name"
        )
    )
