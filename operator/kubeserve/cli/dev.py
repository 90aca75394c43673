"""`kubeserve dev`: the local control plane for development and tests.

The cluster code (TLS, PKI, HTTP client) is imported by the commands that use
it, so that `kubeserve run`, which shares this command line, never loads it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kubeserve.devcluster import build, versions
from kubeserve.devcluster.addresses import NODE_NAME
from kubeserve.devcluster.nodes import DEFAULT_NODES

if TYPE_CHECKING:
    from kubeserve.devcluster.cluster import LocalControlPlane

directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=build.cluster_dir,
    show_default="~/.cache/kubeserve/dev-cluster",
    help="Where the cluster keeps its state.",
)


def _plane(directory: Path) -> LocalControlPlane:
    from kubeserve.devcluster.cluster import LocalControlPlane

    return LocalControlPlane(directory)


@click.group()
def dev() -> None:
    """Run a real local control plane (no Docker) with simulated CPU and GPU nodes."""


@dev.command("build")
def build_command() -> None:
    """Build the pinned control-plane binaries into the cache, once."""
    started = time.monotonic()
    try:
        build.ensure_built()
    except build.BuildError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"control plane binaries ready in {build.cache_root()} ({time.monotonic() - started:.1f} s)")


@dev.command()
@directory_option
@click.option("--reuse", is_flag=True, help="Leave a cluster that already runs from --dir as it is.")
@click.option(
    "--real-node",
    "real",
    type=click.Choice(["yes", "no", "auto"]),
    default="no",
    is_flag=False,
    flag_value="yes",
    help="Add one real node (containerd, kubelet, kube-proxy, CoreDNS) where ordinary pods run, and a "
    "model store that serves it the examples' models; `auto` adds it where this machine can host it.",
)
def up(directory: Path, reuse: bool, real: str) -> None:
    """Start etcd, kube-apiserver, controller-manager, scheduler and kwok, and wait until Ready."""
    from kubeserve.devcluster import images, model_store
    from kubeserve.devcluster.cluster import ClusterError
    from kubeserve.devcluster.host_network import HostError
    from kubeserve.devcluster.real_node import NodeError, RealNode, unsupported_reason

    reason = unsupported_reason() if real != "no" else None
    if reason and real == "yes":
        raise click.ClickException(f"--real-node: {reason}")
    if reason:
        click.echo(f"no real node ({reason}): every pod is simulated by kwok, and nothing answers requests")
    with_node = real != "no" and reason is None
    try:
        # The node's pods run the project's images, which no registry serves: built here first (once).
        if with_node:
            click.echo("the node's images: from the cache, or built now (a first build takes ~5 min)")
        built = images.ensure_images() if with_node else []
    except build.BuildError as error:
        raise click.ClickException(f"--real-node: {error}") from error

    plane = _plane(directory)
    running = plane.running()
    if reuse and running and all(running.values()):
        click.echo(f"cluster already running; kubeconfig: {plane.kubeconfig}")
        return
    started = time.monotonic()
    try:
        state = plane.up(timeout=180.0 if with_node else 90.0, real=with_node)
    except (ClusterError, build.BuildError, HostError, NodeError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"cluster ready in {time.monotonic() - started:.1f} s at {state.server}")
    if built:
        RealNode(plane.directory, plane.logs).import_images([image.archive for image in built])
        click.echo("images on the node: " + ", ".join(image.image.reference for image in built))
    real_nodes = f"1 real node ({NODE_NAME}) and " if with_node else ""
    click.echo(f"{real_nodes}{len(DEFAULT_NODES)} kwok nodes; kubeconfig: {state.kubeconfig}")
    if with_node:
        click.echo(f"model store: {model_store.URL}/ serves {', '.join(model_store.PATHS)}")
    click.echo(f"  export KUBECONFIG={state.kubeconfig}")


@dev.command()
@directory_option
def down(directory: Path) -> None:
    """Stop exactly the processes `up` started, by PID."""
    stopped = _plane(directory).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command()
@directory_option
def status(directory: Path) -> None:
    """Say what runs, where the kubeconfig is, and the versions."""
    plane = _plane(directory)
    state = plane.state()
    click.echo(f"versions: {versions.as_text()}")
    if state is None:
        click.echo("no cluster started from " + str(directory))
        return
    click.echo(f"server: {state.server}\nkubeconfig: {state.kubeconfig}")
    click.echo("processes:")
    for name, alive in plane.running().items():
        click.echo(f"  {name:<24} pid {state.processes[name]:<8} {'running' if alive else 'stopped'}")
    click.echo("nodes:")
    if state.real_node:
        click.echo(f"  {NODE_NAME:<24} real: containerd, kubelet, kube-proxy; pods run here by default")
    for shape in DEFAULT_NODES:
        taint = "GPU taint" if shape.taints else ("simulated taint" if state.real_node else "no taint")
        click.echo(f"  {shape.name:<24} simulated by kwok ({taint})")


@dev.command()
@directory_option
def kubeconfig(directory: Path) -> None:
    """Print the admin kubeconfig's path, for `KUBECONFIG=$(kubeserve dev kubeconfig)`."""
    click.echo(str(_plane(directory).kubeconfig))


@dev.command("images")
def images_command() -> None:
    """Build the operator, activator, storage-initializer and model-server images without Docker, or find
    them cached."""
    from kubeserve.devcluster import images

    started = time.monotonic()
    try:
        built = images.ensure_images()
    except build.BuildError as error:
        raise click.ClickException(str(error)) from error
    for image in built:
        archive_mb = image.archive.stat().st_size / 1e6
        click.echo(f"{image.image.reference:<46} {image.size / 1e6:6.0f} MB ({archive_mb:.0f} MB archive)")
        click.echo(f"  {image.archive}")
    click.echo(f"images ready in {time.monotonic() - started:.1f} s")
