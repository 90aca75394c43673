"""Shared building blocks of the API: the model base, CEL rules and the Kubernetes types Kubeserve embeds.

Kubernetes core types are not modelled in full. A container's own fields are
all listed, so a typo in one is refused with its name, but the nested objects
Kubeserve does not read (probes, affinity, security contexts, volume sources)
are kept as written (`x-kubernetes-preserve-unknown-fields`) and passed on to
the pod untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

GROUP = "serving.kubeserve.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

IMAGE_TAG_PATTERN = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
"""A Docker image tag, as the distribution reference grammar has it."""
IMAGE_DIGEST_PATTERN = "sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}"
"""An image digest in the algorithms containerd and the registries verify (lowercase hex)."""
_PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/"
IMAGE_PATTERN = (
    rf"^(?:{_REGISTRY})?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    rf"(?::{IMAGE_TAG_PATTERN})?(?:@(?:{IMAGE_DIGEST_PATTERN}))?$"
)
"""A whole image reference (`[registry[:port]/]path[:tag][@digest]`), as the distribution reference grammar
has it; Go's RE2 (the API server's schema patterns) and pydantic's Rust regex read it alike."""


@dataclass(frozen=True)
class CelRule:
    """One cross-field rule, stated once for both places that enforce it.

    `expression` goes into the CRD as an `x-kubernetes-validations` entry, so the
    API server refuses bad objects; `holds` is the same rule in Python, so the
    operator refuses the same objects when it parses them. Unit tests evaluate
    both on the same inputs to keep them in agreement. `message` names the field.
    """

    expression: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str | None = None

    def as_schema(self) -> dict[str, str]:
        entry = {"rule": self.expression, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def _schema_extra(schema: dict[str, Any], cls: type[Any]) -> None:
    """Adds a model's CEL rules (its own and inherited) and its pruning choice to its JSON schema."""
    rules = cls.all_cel_rules()
    if rules:
        schema["x-kubernetes-validations"] = [rule.as_schema() for rule in rules]
    if getattr(cls, "preserve_unknown_fields", False):
        schema["x-kubernetes-preserve-unknown-fields"] = True


def explain(error: ValidationError) -> str:
    """Each problem as `field.path: what is wrong`, on one line: for a condition, an Event or a log."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in error.errors()
    )


class ApiModel(BaseModel):
    """Base of every API model: snake_case in Python, KServe's camelCase on the wire.

    Unknown keys are kept rather than refused: the API server already prunes or
    refuses what the CRD does not know, so an extra key here means a newer CRD
    than this operator, which must not crash it; keeping the key also lets
    `model_dump()` give back what was read. Descriptions come from the
    attribute docstrings, which are also what `kubectl explain` shows.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        use_attribute_docstrings=True,
        protected_namespaces=(),
        json_schema_extra=_schema_extra,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()
    """Rules of this class; subclasses add theirs to those inherited."""
    preserve_unknown_fields: ClassVar[bool] = False
    """Whether the API server keeps fields the schema does not list (core types modelled in part)."""

    @classmethod
    def all_cel_rules(cls) -> list[CelRule]:
        """The rules of this class and of its bases, bases first."""
        return [rule for klass in reversed(cls.__mro__) for rule in vars(klass).get("cel_rules", ())]

    @model_validator(mode="after")
    def _check_cel_rules(self) -> ApiModel:
        for rule in self.all_cel_rules():
            if not rule.holds(self):
                raise ValueError(rule.message)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The KServe-shaped JSON of this object, without unset fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


KubeObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes core object Kubeserve passes through without reading (affinity, probes, ...)."""

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: `2`, `500m`, `4Gi`."""


class ObjectMeta(ApiModel):
    """The part of Kubernetes object metadata that Kubeserve reads; the rest is kept."""

    name: str | None = None
    """Name of the object, unique in its namespace."""
    namespace: str | None = None
    """Namespace of the object; unset for cluster-scoped kinds."""
    labels: dict[str, str] | None = None
    """Labels of the object."""
    annotations: dict[str, str] | None = None
    """Annotations of the object."""
    generation: int | None = None
    """Generation of the spec, bumped by the API server on every spec change."""
    uid: str | None = None
    """Unique id given by the API server, used in owner references."""
    resource_version: str | None = None
    """Version of the stored object, for optimistic concurrency."""


class EnvVar(ApiModel):
    """An environment variable of a container."""

    name: str = Field(min_length=1)
    """Name of the variable."""
    value: str | None = None
    """Value of the variable; it may hold templates when it belongs to a runtime's container."""
    value_from: KubeObject | None = None
    """Source of the value (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef)."""


class ContainerPort(ApiModel):
    """A port a container listens on; the component's Service sends port 80 to the first one."""

    container_port: int = Field(ge=1, le=65535)
    """Port number in the container."""
    name: str | None = None
    """Name of the port (for example h2c for gRPC)."""
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    """Transport protocol; TCP when unset."""
    host_port: int | None = Field(default=None, ge=1, le=65535)
    """Port on the node the container port is also exposed on; rarely wanted."""
    host_ip: str | None = None
    """Node address the host port binds to."""


class ResourceRequirements(ApiModel):
    """Compute resources of a container; accelerators are extended resources such as nvidia.com/gpu."""

    limits: dict[str, Quantity] | None = None
    """Most of each resource the container may use, by resource name."""
    requests: dict[str, Quantity] | None = None
    """Resources the scheduler reserves for the container, by resource name."""
    claims: list[KubeObject] | None = None
    """Dynamic resource claims the container uses, by name."""


class Toleration(ApiModel):
    """A toleration of node taints, as in a pod spec."""

    key: str | None = None
    """Taint key the toleration matches; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """How key and value are compared; Equal when unset."""
    value: str | None = None
    """Taint value the toleration matches, with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect the toleration matches; every effect when unset."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated before the pod is evicted."""


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace, by name."""

    name: str
    """Name of the object."""


class Volume(ApiModel):
    """A pod volume (emptyDir, configMap, secret, persistentVolumeClaim, ...), passed on as written."""

    preserve_unknown_fields = True

    name: str
    """Name of the volume, referenced by the containers' volumeMounts."""


class ContainerFields(ApiModel):
    """The fields of a Kubernetes container; the nested objects Kubeserve does not read pass as written."""

    name: str | None = None
    """Name of the container."""
    image: str | None = Field(default=None, pattern=IMAGE_PATTERN)
    """Container image: [registry[:port]/]path[:tag][@sha256:<64 hex digits>], the path in lowercase."""
    command: list[str] | None = None
    """Entrypoint; the image's when unset."""
    args: list[str] | None = None
    """Arguments to the entrypoint."""
    env: list[EnvVar] | None = None
    """Environment variables."""
    env_from: list[KubeObject] | None = None
    """Sources of environment variables (configMapRef, secretRef)."""
    ports: list[ContainerPort] | None = None
    """Ports the container listens on."""
    resources: ResourceRequirements | None = None
    """Compute resources: CPU, memory and accelerators such as nvidia.com/gpu."""
    volume_mounts: list[KubeObject] | None = None
    """Volumes mounted into the container."""
    liveness_probe: KubeObject | None = None
    """Probe that restarts the container when it fails."""
    readiness_probe: KubeObject | None = None
    """Probe that takes the pod out of its Service while it fails."""
    startup_probe: KubeObject | None = None
    """Probe that holds the other probes until the model server has started (large models)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the kubelet pulls the image."""
    working_dir: str | None = None
    """Working directory of the entrypoint."""
    security_context: KubeObject | None = None
    """Security options of the container."""
    lifecycle: KubeObject | None = None
    """Actions run after the container starts and before it stops (postStart, preStop)."""
    resize_policy: list[KubeObject] | None = None
    """How the container is resized in place, per resource."""
    restart_policy: str | None = None
    """Restart policy of an init container (Always makes it a sidecar)."""
    volume_devices: list[KubeObject] | None = None
    """Block devices of the pod the container uses."""
    termination_message_path: str | None = None
    """File the container writes its termination message to."""
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] | None = None
    """Where the termination message is read from."""
    stdin: bool | None = None
    """Whether the container has a stdin buffer."""
    stdin_once: bool | None = None
    """Whether stdin closes after the first attach."""
    tty: bool | None = None
    """Whether the container has a TTY."""


class Container(ContainerFields):
    """A Kubernetes container, named."""

    name: str = Field(min_length=1)
    """Name of the container, unique in the pod."""


class PodCommon(ApiModel):
    """Pod-level fields shared by components and serving runtimes."""

    volumes: list[Volume] | None = None
    """Volumes the containers may mount."""
    node_selector: dict[str, str] | None = None
    """Node labels the pod must land on; an accelerator class adds its own."""
    affinity: KubeObject | None = None
    """Node and pod affinity of the pod."""
    tolerations: list[Toleration] | None = None
    """Taints the pod tolerates; an accelerator class adds its own."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling private images."""
    labels: dict[str, str] | None = None
    """Labels added to the pods (and, for a component, to its Deployment)."""
    annotations: dict[str, str] | None = None
    """Annotations added to the pods (and, for a component, to its Deployment)."""
