"""ServingRuntime and ClusterServingRuntime: the model servers Kubeserve can pick for a model format.

Per-accelerator images are a Kubeserve extension: `acceleratorImages` maps an
accelerator class name (`nvidia-a100`, from the operator's configuration) or an
extended resource name (`nvidia.com/gpu`) to the image that replaces the image
of the runtime's first container when the component runs on that accelerator.
The class name is looked up before the resource name, so a runtime can ship
one GPU image for every NVIDIA class and a special build for one of them.

Aliases are a Kubeserve extension too: other names `model.runtime` may use
for the runtime, so that KServe manifests naming KServe's runtimes
(`kserve-sklearnserver`) reach the runtime that serves the same formats here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kubeserve.api.common import API_VERSION, IMAGE_PATTERN, ApiModel, Container, ObjectMeta, PodCommon
from kubeserve.api.components import DNS_LABEL_PATTERN, ProtocolVersion


class SupportedModelFormat(ApiModel):
    """A model format the runtime serves, and whether it is picked for that format on its own."""

    name: str = Field(min_length=1, max_length=63)
    """Name of the format, matched against model.modelFormat.name."""
    version: str | None = Field(default=None, max_length=63)
    """Version of the format; when set, a model asking for another version of the format does not match."""
    auto_select: bool | None = None
    """Whether the runtime may be chosen for models of this format that do not name a runtime."""
    priority: int | None = Field(default=None, ge=1)
    """Rank among auto-selectable runtimes of the same format, higher first; used with autoSelect only."""


class StorageHelper(ApiModel):
    """KServe's switch for the storage initializer of the runtime's pods."""

    disabled: bool = False
    """Whether the runtime fetches its model itself: no storage-initializer init container runs; the
    model server gets the model's location as STORAGE_URI, the initializer's credentials and a
    writable model directory. A pod then starts its server without waiting for the download."""


class ServingRuntimeSpec(PodCommon):
    """A pod template for a model server and the formats and protocols it serves."""

    supported_model_formats: Annotated[list[SupportedModelFormat], Field(max_length=64)] = Field(
        default_factory=list
    )
    """Formats the runtime can load."""
    protocol_versions: list[ProtocolVersion] | None = None
    """Inference protocols the runtime speaks; v1 only when unset."""
    multi_model: bool = False
    """Whether the runtime loads many models at once (ModelMesh); Kubeserve serves single-model runtimes."""
    disabled: bool = False
    """Whether the runtime is out of use: neither auto-selected nor accepted by name."""
    aliases: (
        Annotated[list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]], Field(max_length=16)]
        | None
    ) = None
    """Kubeserve extension: other names model.runtime may give this runtime, such as KServe's runtime
    names (kserve-sklearnserver). A runtime's own name comes first: an alias is used only when no
    runtime has that name."""
    containers: Annotated[list[Container], Field(min_length=1, max_length=16)]
    """Containers of the model server pod, the model server first. Their args and env values may hold
    templates over the service (name, namespace, labels, annotations), the model directory and the protocol.
    A component's own args are appended to the first container's."""
    storage_helper: StorageHelper | None = None
    """The storage initializer; on unless `disabled`."""
    accelerator_images: (
        Annotated[dict[str, Annotated[str, Field(pattern=IMAGE_PATTERN)]], Field(max_length=32)] | None
    ) = None
    """Kubeserve extension: image of the first container per accelerator, by accelerator class name
    (nvidia-a100) or extended resource name (nvidia.com/gpu); the class name is looked up first."""

    @property
    def supported_protocols(self) -> list[ProtocolVersion]:
        """The protocols in force: an unset protocolVersions counts as v1 only, as in KServe."""
        return self.protocol_versions or ["v1"]

    def accelerator_image(self, accelerator_class: str | None, resource_names: list[str]) -> str | None:
        """The image for a component on that accelerator: by class name, else by resource name, else None."""
        images = self.accelerator_images or {}
        for key in [accelerator_class, *resource_names]:
            if key is not None and key in images:
                return images[key]
        return None


class ServingRuntime(ApiModel):
    """A namespaced serving runtime; it comes before a cluster runtime of the same name or priority."""

    api_version: str = API_VERSION
    kind: Literal["ServingRuntime"] = "ServingRuntime"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServingRuntimeSpec


class ClusterServingRuntime(ApiModel):
    """A serving runtime for every namespace of the cluster."""

    api_version: str = API_VERSION
    kind: Literal["ClusterServingRuntime"] = "ClusterServingRuntime"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServingRuntimeSpec
