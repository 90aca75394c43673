"""The `kubeserve` command: `run` the operator, or manage the `dev` control plane."""

from __future__ import annotations

import click

from kubeserve.cli.dev import dev
from kubeserve.cli.run import run


@click.group()
@click.version_option(package_name="kubeserve")
def cli() -> None:
    """Kubeserve: model serving on Kubernetes."""


cli.add_command(run)
cli.add_command(dev)
