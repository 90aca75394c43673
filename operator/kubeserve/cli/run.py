"""`kubeserve run`: the operator itself, on kopf, against the current kubeconfig."""

from __future__ import annotations

import click
import kopf


@click.command()
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Watch only these namespaces (repeatable); all namespaces when omitted.",
)
@click.option("--liveness", default=None, help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
def run(namespaces: tuple[str, ...], liveness: str | None) -> None:
    """Start the operator: watch InferenceServices and runtimes, reconcile their children."""
    import kubeserve.handlers  # noqa: F401  (registers the kopf handlers)

    kopf.run(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,
        liveness_endpoint=liveness,
    )
