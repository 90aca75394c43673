"""`kubeserve-storage <uri> [<dest>] [<uri> <dest>]...`: the init container's command (KServe's
alternating pairs for storageUris). Exit 0 when every model is in place."""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import kubeserve_storage
from kubeserve_storage.errors import StorageError
from kubeserve_storage.fetch import fetch
from kubeserve_storage.uri import ALLOWED

DEFAULT_DEST = Path("/mnt/models")


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch, and turn a StorageError into one log line naming the URI, and exit status 1."""
    # The package docstring holds the env contract; --help shows it, since an image has no README.
    _, heading, contract = (kubeserve_storage.__doc__ or "").partition("Environment contract")
    parser = argparse.ArgumentParser(
        prog="kubeserve-storage",
        description="Fetch a model into the model directory, atomically.",
        epilog=heading + contract,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", help=f"where the model is: {ALLOWED}")
    parser.add_argument(
        "dest", nargs="?", type=Path, default=DEFAULT_DEST, help="model directory (%(default)s)"
    )
    parser.add_argument(
        "more", nargs="*", metavar="uri dest", help="more locations, each with its own directory"
    )
    args = parser.parse_args(argv)
    if len(args.more) % 2:
        parser.error(f"{args.more[-1]} has no destination: after the first, give uri and dest in pairs")
    pairs = [(args.uri, args.dest), *zip(args.more[::2], map(Path, args.more[1::2]), strict=True)]
    logging.basicConfig(level=logging.INFO, format="kubeserve-storage: %(message)s", stream=sys.stderr)
    for uri, dest in pairs:
        try:
            downloaded = fetch(uri, dest)
        except StorageError as error:
            print(f"kubeserve-storage: error: cannot fetch {uri}: {error}", file=sys.stderr)
            return 1
        if downloaded:
            print(f"kubeserve-storage: {uri} is ready in {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
