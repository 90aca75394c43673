"""`kubeserve run`: the operator itself, on kopf, against the current kubeconfig."""

from __future__ import annotations

import logging
import os
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
    help="Reconcile only in these namespaces (repeatable): names, or globs with `!` exclusions such as "
    "'!kube-system,!kubeserve-system'; all namespaces when omitted.",
)
@click.option(
    "--http-address",
    default=None,
    metavar="HOST:PORT",
    help="Serve /healthz, /readyz and /metrics (Prometheus) here, e.g. 0.0.0.0:8080.",
)
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Reconcile only while holding a Lease, so that several replicas can run (one acts at a time).",
)
@click.option(
    "--operator-namespace",
    default=lambda: os.environ.get("POD_NAMESPACE"),
    help="Namespace of the Lease and the configuration ConfigMap [default: $POD_NAMESPACE].",
)
@click.option("--lease-name", default="kubeserve-operator", show_default=True, help="Name of the Lease.")
@click.option(
    "--lease-duration",
    type=click.FloatRange(min=3),
    default=15.0,
    show_default=True,
    help="Seconds without renewal after which another replica may take the Lease; the holder stops "
    "writing after two thirds of it.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Read the configuration (config.yaml's keys) from FILE, once at start [default: the file "
    "$KUBESERVE_CONFIG names; built-in defaults without either].",
)
@click.option(
    "--config-map",
    default=None,
    help="Read config.yaml from this ConfigMap in the operator namespace, and follow its changes "
    "(instead of --config or $KUBESERVE_CONFIG).",
)
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="json: one JSON object per line, with the InferenceService and the decision as fields.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Log every reconcile (Kubeserve's own debug messages; kopf's stay at INFO).",
)
def run(
    namespaces: tuple[str, ...],
    http_address: str | None,
    leader_elect: bool,
    operator_namespace: str | None,
    lease_name: str,
    lease_duration: float,
    config_file: str | None,
    config_map: str | None,
    log_format: str,
    debug: bool,
) -> None:
    """Start the operator: watch InferenceServices and runtimes, reconcile their children."""
    # The operator talks through its own small client; kopf would otherwise import these clients just
    # to recognise their objects, and the `kubernetes` package alone costs more memory than the rest.
    for client in UNUSED_CLIENTS:
        sys.modules.setdefault(client, None)  # type: ignore[arg-type]
    import kopf

    import kubeserve.handlers  # noqa: F401  (registers the kopf handlers)
    from kubeserve.leadership import LeaseTiming
    from kubeserve.options import RunOptions

    try:
        options = RunOptions(
            http_address=http_address,
            leader_elect=leader_elect,
            operator_namespace=operator_namespace,
            lease_name=lease_name,
            lease_timing=LeaseTiming(
                duration=lease_duration, deadline=lease_duration * 2 / 3, retry=lease_duration / 7.5
            ),
            config_file=config_file,
            config_map=config_map,
            namespaces=namespaces,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error

    # kopf.run() leaves logging alone; without this, the reconciler's INFO messages are lost. kopf's
    # "handler succeeded" per watch event would drown them (and cost CPU).
    kopf.configure(
        verbose=False, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if debug:
        logging.getLogger("kubeserve").setLevel(logging.DEBUG)

    kopf.run(
        # kopf watches only CRDs, which are cluster-scoped; Kubeserve's own watches keep to --namespace.
        # Given namespaces, kopf would list and watch Namespace objects (more RBAC) and, while none of
        # them exists, not watch the CRDs at all.
        clusterwide=True,
        standalone=True,
        # kopf would otherwise name itself after the user from /etc/passwd, and the chart runs the
        # image as a UID that has no entry there (as OpenShift's arbitrary UIDs do): it would not start.
        # (kopf types it as its `Identity`, a NewType of str that it does not export.)
        identity=options.identity(),  # type: ignore[arg-type]
        memo=kopf.Memo(options=options),
    )
