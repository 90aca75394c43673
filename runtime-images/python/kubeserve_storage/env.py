"""Reading switches from the environment, spelled the way KServe's ServiceAccount annotations spell them."""

from collections.abc import Mapping

from kubeserve_storage.errors import StorageError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    """A boolean env var ("1"/"0", "true"/"false", ...); a value that is neither is an error, not a guess."""
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise StorageError(
        f"environment variable {name}={environ[name]!r} is not a boolean: use 1/0 or true/false"
    )
