"""`kubeserve run`: the operator itself, on kopf, against the current kubeconfig."""

from __future__ import annotations

import logging
import sys

import click

UNUSED_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")
"""API clients kopf imports whenever they are installed (as in a dev or test environment)."""


@click.command()
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Watch only these namespaces (repeatable); all namespaces when omitted.",
)
@click.option("--liveness", default=None, help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
@click.option(
    "--debug",
    is_flag=True,
    help="Log every reconcile (Kubeserve's own debug messages; kopf's stay at INFO).",
)
def run(namespaces: tuple[str, ...], liveness: str | None, debug: bool) -> None:
    """Start the operator: watch InferenceServices and runtimes, reconcile their children."""
    # The operator talks through its own small client; kopf would otherwise import these clients just
    # to recognise their objects, and the `kubernetes` package alone costs more memory than the rest.
    for client in UNUSED_CLIENTS:
        sys.modules.setdefault(client, None)  # type: ignore[arg-type]
    import kopf

    import kubeserve.handlers  # noqa: F401  (registers the kopf handlers)

    # kopf.run() leaves logging alone; without this, the reconciler's INFO messages are lost. kopf's
    # "handler succeeded" per watch event would drown them (and cost CPU).
    kopf.configure(verbose=False)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if debug:
        logging.getLogger("kubeserve").setLevel(logging.DEBUG)

    kopf.run(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,
        liveness_endpoint=liveness,
    )
