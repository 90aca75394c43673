"""The components of an InferenceService (predictor, transformer, explainer), as KServe v1beta1 names them."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, WithJsonSchema

from kubeserve.api.common import (
    IMAGE_DIGEST_PATTERN,
    IMAGE_TAG_PATTERN,
    ApiModel,
    CelRule,
    Container,
    ContainerFields,
    KubeObject,
    PodCommon,
)

ProtocolVersion = Literal["v1", "v2", "grpc-v1", "grpc-v2"]
ScaleMetric = Literal["cpu", "memory", "concurrency", "rps"]
ComponentName = Literal["predictor", "transformer", "explainer"]

FORMAT_PROTOCOLS: dict[str, ProtocolVersion] = {"triton": "v2", "vllm": "v2"}
"""The protocol a model of these formats is served with when protocolVersion is unset, as KServe
defaults it: their servers speak no v1. Every other format counts as v1."""

STORAGE_URI_PATTERN = r"^((gs|s3|https?|hf|oci|oci[+]native)://.+|pvc://[^/]+(/.*)?|/.+)$"
"""Schemes the storage initializer fetches from, model images (`oci://`, `oci+native://`), plus
`pvc://<claim>/<path>` (mounted) and absolute paths (already in the image or on a volume). RE2 and Python
`re` read it alike."""
_STORAGE_URI = re.compile(STORAGE_URI_PATTERN)
PARENT_SEGMENT_PATTERN = "^[^?#]*/[.][.]([/?#]|$)"
"""A `..` segment in the path of a URI (before any query or fragment) or of an absolute path: a bucket
key or a claim path would be taken literally or climb out, and no model location needs one."""
_PARENT_SEGMENT = re.compile(PARENT_SEGMENT_PATTERN)
RUNTIME_VERSION_PATTERN = f"^({IMAGE_TAG_PATTERN}|{IMAGE_DIGEST_PATTERN})$"
_RUNTIME_VERSION = re.compile(RUNTIME_VERSION_PATTERN)

LEGACY_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "pytorch",
    "tensorflow",
    "triton",
    "huggingface",
    "pmml",
    "paddle",
)
"""KServe's older predictor keys; each means `model` with that `modelFormat.name`."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ModelFormat(ApiModel):
    """The format of a model, which decides the serving runtimes that can load it."""

    name: str = Field(min_length=1, max_length=63)
    """Name of the format, for example sklearn, xgboost, onnx, pytorch, tensorflow, triton, huggingface."""
    version: str | None = Field(default=None, max_length=63)
    """Version of the format; when set, a runtime must list this version (or none) for the format."""


STORAGE_URIS_PATTERN = r"^((gs|s3|https?|hf)://.+|pvc://[^/]+(/.*)?)$"
"""What a storageUris entry may name: a download, or a claim to mount; nothing already in the image."""
_STORAGE_URIS = re.compile(STORAGE_URIS_PATTERN)
PARENT_SEGMENT_ANYWHERE = "(^|/)[.][.](/|$)"
"""A `..` segment anywhere in a path (storage.path, a mountPath)."""
_PARENT_ANYWHERE = re.compile(PARENT_SEGMENT_ANYWHERE)


class StorageSpec(ApiModel):
    """Where the model is in a bucket described by an entry of the `storage-config` Secret (KServe's
    StorageSpec). The storage initializer reads the entry through a secretKeyRef in the pod; the operator
    never reads the Secret. Only entries of type s3 are supported."""

    cel_rules = (
        CelRule(
            expression=f"!has(self.path) || !self.path.matches('{PARENT_SEGMENT_ANYWHERE}')",
            message="storage.path must not have a '..' segment: name the model by its full path in the "
            "bucket",
            holds=lambda storage: storage.path is None or _PARENT_ANYWHERE.search(storage.path) is None,
            field_path=".path",
        ),
        CelRule(
            expression="!has(self.parameters) || !('type' in self.parameters) "
            "|| self.parameters['type'] == 's3'",
            message="storage.parameters.type must be s3: Kubeserve's storage initializer reads s3 entries of "
            "the storage-config Secret only (KServe's hdfs and webhdfs are not supported)",
            holds=lambda storage: (storage.parameters or {}).get("type", "s3") == "s3",
            field_path=".parameters",
        ),
        CelRule(
            expression="!has(self.schemaPath)",
            message="storage.schemaPath is not supported: Kubeserve fetches the model at storage.path only "
            "(KServe reads schemaPath in ModelMesh)",
            holds=lambda storage: storage.schema_path is None,
            field_path=".schemaPath",
        ),
    )

    path: str | None = Field(default=None, min_length=1, max_length=1024)
    """Path of the model in the bucket (a leading '/' is ignored): everything under it is downloaded into
    /mnt/models, as from s3://<bucket>/<path>. Required unless storageUri is set. A '..' segment is
    refused."""
    schema_path: str | None = Field(default=None, max_length=1024)
    """KServe's path of a model schema file (read by ModelMesh only); refused here."""
    parameters: dict[str, str] | None = None
    """Settings laid over the storage-config entry (KServe's names: type, bucket, endpoint_url, region,
    access_key_id, ...), passed to the storage initializer as STORAGE_OVERRIDE_CONFIG. type must be s3."""
    key: str | None = Field(default=None, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key of the storage-config Secret that describes the bucket; when unset, `default_<type>` if
    parameters name a type, else `default`, and a missing default key means no entry (credentials then
    come from the environment). The Secret is `storage-config`, or the one the InferenceService's
    serving.kserve.io/storageSecretName annotation names."""


class StorageUri(ApiModel):
    """One more place to download from (KServe's storageUris entry), and where the files land."""

    cel_rules = (
        CelRule(
            expression=f"self.uri.matches('{STORAGE_URIS_PATTERN}') "
            f"&& !self.uri.matches('{PARENT_SEGMENT_PATTERN}')",
            message="storageUris[].uri must start with gs://, s3://, https://, http://, hf:// or "
            "pvc://<claim>/, without a '..' path segment",
            holds=lambda entry: (
                _STORAGE_URIS.fullmatch(entry.uri) is not None and _PARENT_SEGMENT.match(entry.uri) is None
            ),
            field_path=".uri",
        ),
        CelRule(
            expression="!has(self.mountPath) || (self.mountPath.startsWith('/') && self.mountPath != '/' "
            f"&& !self.mountPath.matches('{PARENT_SEGMENT_ANYWHERE}'))",
            message="storageUris[].mountPath must be an absolute path other than '/', without a '..' "
            "segment, such as /mnt/models/base",
            holds=lambda entry: (
                entry.mount_path.startswith("/")
                and entry.mount_path != "/"
                and _PARENT_ANYWHERE.search(entry.mount_path) is None
            ),
            field_path=".mountPath",
        ),
    )

    uri: str = Field(min_length=1, max_length=2048)
    """Where the files are: gs://, s3://, https://, http:// or hf:// (downloaded by the storage
    initializer with the ServiceAccount's credentials), or pvc://<claim>/<path> (mounted read-only)."""
    mount_path: str = Field(default="/mnt/models", max_length=1024)
    """Absolute directory the files land in; /mnt/models when unset. Downloads share one emptyDir mounted
    at the common parent of their mountPaths, which must not be '/'."""


class PredictorExtensionSpec(ContainerFields):
    """A model server container with where its model comes from: the body of a legacy framework key."""

    cel_rules = (
        CelRule(
            expression=f"!has(self.storageUri) || self.storageUri.matches('{STORAGE_URI_PATTERN}')",
            message="storageUri must start with gs://, s3://, https://, http://, hf://, oci://, "
            "oci+native:// or pvc://<claim>/, or be an absolute path",
            holds=lambda spec: (
                spec.storage_uri is None or _STORAGE_URI.fullmatch(spec.storage_uri) is not None
            ),
            field_path=".storageUri",
        ),
        CelRule(
            expression=f"!has(self.storageUri) || !self.storageUri.matches('{PARENT_SEGMENT_PATTERN}')",
            message="storageUri must not have a '..' path segment: name the model by its full path",
            holds=lambda spec: spec.storage_uri is None or _PARENT_SEGMENT.match(spec.storage_uri) is None,
            field_path=".storageUri",
        ),
        CelRule(
            expression="!has(self.runtimeVersion) "
            f"|| self.runtimeVersion.matches('{RUNTIME_VERSION_PATTERN}')",
            message="runtimeVersion must be an image tag (letters, digits, '_', '.' and '-', at most 128, "
            "not starting with '.' or '-') or a digest (sha256:<64 lowercase hex digits>, or sha384, sha512)",
            holds=lambda spec: (
                spec.runtime_version is None or _RUNTIME_VERSION.fullmatch(spec.runtime_version) is not None
            ),
            field_path=".runtimeVersion",
        ),
        CelRule(
            expression="!has(self.storage) || has(self.storageUri) || has(self.storage.path)",
            message="storage.path is required unless storageUri is set: name the model's path in the bucket",
            holds=lambda spec: (
                spec.storage is None or spec.storage_uri is not None or spec.storage.path is not None
            ),
            field_path=".storage",
        ),
        CelRule(
            expression="!has(self.storage) || !has(self.storageUri) "
            "|| (self.storageUri.startsWith('s3://') && !has(self.storage.path))",
            message="storage with storageUri: storageUri must be s3:// and storage.path unset (storage "
            "then only picks the storage-config entry with the credentials); or remove storageUri and set "
            "storage.path",
            holds=lambda spec: (
                spec.storage is None
                or spec.storage_uri is None
                or (spec.storage_uri.startswith("s3://") and spec.storage.path is None)
            ),
            field_path=".storage",
        ),
    )

    storage_uri: str | None = Field(default=None, max_length=2048)
    """Where the model is: gs://, s3://, https://, http:// and hf:// are downloaded into /mnt/models;
    pvc://<claim>/<path> is mounted there read-only; an absolute path is used as it is. oci://<image> is
    KServe's modelcar: the image runs as a sidecar in a pod sharing its process namespace, and the server
    reads the image's /models at /mnt/models through /proc (the image needs sh, ln and sleep; both run as
    the server's runAsUser and runAsGroup, 1000 when unset). oci+native://<image> mounts the image's /models
    at /mnt/models as a Kubernetes image volume (ImageVolume); a cluster without it refuses the Deployment,
    which the ChildRejected condition shows. A '..' path segment is refused."""
    storage: StorageSpec | None = None
    """KServe's StorageSpec: the model at storage.path in the bucket that an entry of the storage-config
    Secret describes, downloaded into /mnt/models by the storage initializer, which reads the entry through
    a secretKeyRef (STORAGE_CONFIG) and storage.parameters as STORAGE_OVERRIDE_CONFIG. It replaces the
    ServiceAccount's credentials. With storageUri (s3:// only), it gives the credentials for that URI."""
    runtime_version: str | None = Field(default=None, max_length=len("sha512:") + 128)
    """Image tag (2.6.2) or digest (sha256:<64 hex digits>) of the serving runtime's container, in place of
    the runtime's own tag or digest."""
    protocol_version: ProtocolVersion | None = None
    """Inference protocol the model is served with: v1, v2 (Open Inference Protocol), grpc-v1 or grpc-v2.
    Unset means v2 for the triton and vllm formats and v1 for every other, as KServe defaults it."""
    accelerator: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Kubeserve extension: the accelerator class to run on, for example nvidia-a100, as named in the
    operator's configuration. The pod gets the class's node selector and tolerations, and the runtime's
    image for that class when the runtime declares one."""


class ModelSpec(PredictorExtensionSpec):
    """A model to serve: its format, where it is stored, and optionally the runtime to serve it with."""

    model_format: ModelFormat
    """Format of the model; a runtime that supports it is chosen unless runtime names one."""
    runtime: str | None = Field(default=None, max_length=253)
    """Name of the ServingRuntime (looked up first) or ClusterServingRuntime to use; by format if unset.
    A name a runtime lists in its aliases (KServe's runtime names, such as kserve-sklearnserver) names
    that runtime."""

    @property
    def protocol(self) -> ProtocolVersion:
        """The protocol in force, which both runtime selection and the runtime's templates see: an unset
        protocolVersion takes the format's default (FORMAT_PROTOCOLS), else v1."""
        return self.protocol_version or FORMAT_PROTOCOLS.get(self.model_format.name, "v1")


class LoggerSpec(ApiModel):
    """Sends a copy of each request and/or response to a URL: done by the model server, so only by a
    runtime whose templates read logger_url and logger_mode (kubeserve-server does); with any other, the
    service runs and its FieldsSupported condition says the logger is not acted on."""

    url: str = Field(max_length=2048)
    """Endpoint that receives the logged payloads (Kubeserve has no default logger URL)."""
    mode: Literal["all", "request", "response"] = "all"
    """What is logged: requests, responses, or both."""


class BatcherSpec(ApiModel):
    """Groups single requests into batches inside the model server: only a runtime whose templates read
    max_batch_size and max_batch_latency does it (kubeserve-server does); with any other, the service runs
    and its FieldsSupported condition says the batcher is not acted on."""

    max_batch_size: int | None = Field(default=None, ge=1)
    """Most requests in one batch; 32 when unset, as in KServe."""
    max_latency: int | None = Field(default=None, ge=1)
    """Longest time, in milliseconds, a request waits for its batch to fill; 5000 when unset, as in
    KServe."""
    timeout: int | None = Field(default=None, ge=1)
    """Time limit, in seconds, for a batch: passed as batch_timeout to the runtime's templates, which no
    shipped runtime reads, so setting it gives the FieldsSupported condition."""


MetricTargetType = Literal["Utilization", "AverageValue", "Value"]
MetricQuantity = Annotated[
    int | Annotated[str, Field(max_length=64)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "maxLength": 64,
        }
    ),
]
"""A metric target, as a Kubernetes quantity (`2`, `500m`, `2Gi`); bounded, so CEL rules may read it."""
_TARGET_VALUE_FIELD = {
    "Utilization": ("averageUtilization", "average_utilization"),
    "AverageValue": ("averageValue", "average_value"),
    "Value": ("value", "value"),
}
"""Each target type's value field: (JSON name, Python name)."""


class MetricTarget(ApiModel):
    """The value a metric is held at (KServe's MetricTarget, as in autoscaling/v2)."""

    cel_rules = (
        CelRule(
            expression=" && ".join(
                f"(self.type != '{kind}' || has(self.{field}))"
                for kind, (field, _) in _TARGET_VALUE_FIELD.items()
            ),
            message="autoScaling target: type Utilization needs averageUtilization, AverageValue needs "
            "averageValue, Value needs value",
            holds=lambda target: getattr(target, _TARGET_VALUE_FIELD[target.type][1]) is not None,
        ),
    )

    type: MetricTargetType
    """Utilization (percent of the pods' request), AverageValue (per replica) or Value (in total)."""
    average_utilization: int | None = Field(default=None, ge=1, le=100)
    """Percent of the resource request, averaged over the replicas; for type Utilization."""
    average_value: MetricQuantity | None = None
    """Quantity averaged over the replicas (`500m`, `2Gi`); for type AverageValue."""
    value: MetricQuantity | None = None
    """Quantity of the whole metric (`2`, `100.5`); for type Value."""


class ResourceMetricSource(ApiModel):
    """cpu or memory of the pods, as the HPA (or KEDA's cpu and memory scalers) reads it."""

    cel_rules = (
        CelRule(
            expression="self.target.type != 'Value'",
            message="autoScaling resource target.type must be Utilization or AverageValue: cpu and memory "
            "are per replica",
            holds=lambda source: source.target.type != "Value",
            field_path=".target.type",
        ),
    )

    name: Literal["cpu", "memory"]
    """The resource: cpu or memory."""
    target: MetricTarget
    """The utilization or average value to hold it at."""


class ExternalMetric(ApiModel):
    """A query to a metrics backend, which KEDA runs (KServe's ExternalMetrics)."""

    backend: Literal["prometheus", "graphite"]
    """The backend KEDA queries, by its scaler's name."""
    server_address: str = Field(min_length=1, max_length=2048)
    """Address of the backend, for example http://prometheus.monitoring:9090."""
    query: str = Field(min_length=1, max_length=8192)
    """The query whose result is compared with the target (PromQL for prometheus)."""
    namespace: str | None = Field(default=None, max_length=253)
    """Tenant namespace of the query, for a multi-tenant prometheus."""


class AuthenticationRef(ApiModel):
    """A KEDA TriggerAuthentication, by name."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the TriggerAuthentication in the service's namespace."""


class ExternalAuthentication(ApiModel):
    """How KEDA authenticates to the backend (KServe's ExtMetricAuthentication)."""

    authentication_ref: AuthenticationRef
    """The TriggerAuthentication that holds the credentials."""
    auth_modes: str | None = Field(default=None, max_length=63)
    """KEDA's authModes of the scaler: bearer, basic or tls."""


PLAIN_NUMBER = r"^[0-9]+([.][0-9]+)?$"
"""A threshold as KEDA's scalers parse it (a float), without a quantity's suffix."""


class ExternalTarget(MetricTarget):
    """The threshold of a query: a plain number, since KEDA passes it to its scaler as written."""

    cel_rules = (
        CelRule(
            expression=f"!has(self.value) || type(self.value) == int || self.value.matches('{PLAIN_NUMBER}')",
            message="autoScaling external target.value must be a plain number such as '2' or '100.5': it is "
            "KEDA's threshold",
            holds=lambda target: (
                target.value is None or re.fullmatch(PLAIN_NUMBER, str(target.value)) is not None
            ),
            field_path=".value",
        ),
    )


class ExternalMetricSource(ApiModel):
    """A metric from outside the pods, such as a Prometheus query: only KEDA (the keda autoscaler class)
    acts on it; the HPA cannot, and says so in FieldsSupported."""

    cel_rules = (
        CelRule(
            expression="self.target.type == 'Value'",
            message="autoScaling external target.type must be Value: the query's threshold, as in KServe",
            holds=lambda source: source.target.type == "Value",
            field_path=".target.type",
        ),
    )

    metric: ExternalMetric
    """The backend and query."""
    target: ExternalTarget
    """The threshold (type Value): KEDA adds a replica for each threshold's worth of the query's result."""
    authentication_ref: ExternalAuthentication | None = None
    """Credentials for the backend, through a KEDA TriggerAuthentication."""


MetricSourceType = Literal["Resource", "External", "PodMetric"]


class MetricsSpec(ApiModel):
    """One metric to scale on: `type` and the one matching field (KServe's MetricsSpec)."""

    cel_rules = (
        CelRule(
            expression="self.type != 'PodMetric'",
            message="autoScaling.metrics type PodMetric is not supported: it needs KServe's OpenTelemetry "
            "collector sidecar; use type External with a prometheus query",
            holds=lambda metric: metric.type != "PodMetric",
            field_path=".type",
        ),
        CelRule(
            expression="(self.type == 'Resource') == has(self.resource) "
            "&& (self.type == 'External') == has(self.external)",
            message="autoScaling.metrics: type Resource sets resource, type External sets external, and no "
            "other field",
            holds=lambda metric: (
                (metric.type == "Resource") == (metric.resource is not None)
                and (metric.type == "External") == (metric.external is not None)
            ),
        ),
        CelRule(
            expression="self.type != 'Resource' || !has(self.useCachedMetrics) || !self.useCachedMetrics",
            message="autoScaling.metrics useCachedMetrics is for type External only: KEDA reads cpu and "
            "memory from the metrics server",
            holds=lambda metric: metric.type != "Resource" or not metric.use_cached_metrics,
            field_path=".useCachedMetrics",
        ),
    )

    type: MetricSourceType
    """Resource (cpu or memory of the pods) or External (a backend's query, through KEDA)."""
    resource: ResourceMetricSource | None = None
    """The resource metric, for type Resource."""
    external: ExternalMetricSource | None = None
    """The backend's query, for type External."""
    podmetric: KubeObject | None = None
    """KServe's OpenTelemetry pod metric; refused (no collector sidecar here)."""
    name: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Name of the KEDA trigger, unique in the list (keda class)."""
    use_cached_metrics: bool | None = None
    """Whether KEDA answers the HPA from the value of its last poll (keda class; not for type Resource)."""


class KedaFallback(ApiModel):
    """Replicas to hold while KEDA cannot read the metrics (KServe's KEDAFallback)."""

    failure_threshold: int = Field(ge=0)
    """Failed reads in a row before falling back."""
    replicas: int = Field(ge=0)
    """Replicas meanwhile (a canary track gets its share of them)."""
    behavior: Literal["static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"] = (
        "static"
    )
    """Whether the current count counts too: static (the default) holds `replicas`."""


class KedaScalingConfig(ApiModel):
    """Options of the KEDA ScaledObject (KServe's KEDAScalingConfig), for the keda autoscaler class."""

    polling_interval: int | None = Field(default=None, ge=1)
    """Seconds between reads of each trigger; KEDA's default is 30."""
    cooldown_period: int | None = Field(default=None, ge=0)
    """Seconds after the last active trigger before scaling back to minReplicas; KEDA's default is 300."""
    initial_cooldown_period: int | None = Field(default=None, ge=0)
    """Seconds after the ScaledObject is created before its triggers are read (a model loading)."""
    idle_replica_count: int | None = Field(default=None, ge=0)
    """Replicas while no trigger is active; below minReplicas."""
    fallback: KedaFallback | None = None
    """Replicas to hold while the metrics cannot be read."""


class AutoScalingSpec(ApiModel):
    """KServe's autoScaling: the metrics to scale on, instead of scaleMetric and scaleTarget.

    Under the hpa class (the default) its Resource metrics become the HPA's;
    under the keda class every metric becomes a trigger of a KEDA ScaledObject.
    """

    cel_rules = (
        CelRule(
            expression="!has(self.keda) || !has(self.keda.fallback) "
            "|| (has(self.metrics) && self.metrics.exists(m, m.type == 'External'))",
            message="autoScaling.keda.fallback needs an External metric: KEDA falls back only for "
            "triggers other than cpu and memory",
            holds=lambda spec: (
                spec.keda is None
                or spec.keda.fallback is None
                or any(m.type == "External" for m in spec.metrics or [])
            ),
            field_path=".keda.fallback",
        ),
    )

    metrics: Annotated[list[MetricsSpec], Field(max_length=16)] | None = None
    """The metrics; the replica count is the highest any of them asks for."""
    behavior: KubeObject | None = None
    """How fast to scale up and down (autoscaling/v2 HorizontalPodAutoscalerBehavior), for either class."""
    keda: KedaScalingConfig | None = None
    """KEDA's options, for the keda class."""


class ComponentSpec(PodCommon):
    """What every component has: scaling, rollout and pod-level fields, and optionally custom containers."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            expression="!has(self.minReplicas) || !has(self.maxReplicas) "
            "|| self.minReplicas <= self.maxReplicas",
            message="minReplicas must not be greater than maxReplicas",
            holds=lambda spec: spec.max_replicas is None or spec.min_replicas <= spec.max_replicas,
            field_path=".minReplicas",
        ),
        CelRule(
            expression="!has(self.autoScaling) || (!has(self.scaleMetric) && !has(self.scaleTarget))",
            message="autoScaling replaces scaleMetric and scaleTarget: set one or the other",
            holds=lambda spec: (
                spec.auto_scaling is None or (spec.scale_metric is None and spec.scale_target is None)
            ),
            field_path=".autoScaling",
        ),
        CelRule(
            expression="!has(self.autoScaling) || !has(self.autoScaling.keda) "
            "|| !has(self.autoScaling.keda.idleReplicaCount) "
            "|| self.autoScaling.keda.idleReplicaCount < (has(self.minReplicas) ? self.minReplicas : 1)",
            message="autoScaling.keda.idleReplicaCount must be below minReplicas (KEDA refuses it otherwise)",
            holds=lambda spec: (
                spec.auto_scaling is None
                or spec.auto_scaling.keda is None
                or spec.auto_scaling.keda.idle_replica_count is None
                or spec.auto_scaling.keda.idle_replica_count < spec.min_replicas
            ),
            field_path=".autoScaling.keda.idleReplicaCount",
        ),
    )

    containers: Annotated[list[Container], Field(min_length=1, max_length=16)] | None = None
    """Custom containers, for a model server image of your own: the first one serves. Beside a model (in
    the predictor), they run in the model server's pod instead, as a collocated transformer."""
    storage_uris: Annotated[list[StorageUri], Field(max_length=16)] | None = None
    """KServe's storageUris: several places to fetch from, each into its mountPath. The storage initializer
    downloads them in order (with the ServiceAccount's credentials) into one emptyDir mounted at the common
    parent of their mountPaths; pvc:// entries are mounted at their mountPath instead. Not with the model's
    storageUri or storage."""
    min_replicas: int = Field(default=1, ge=0)
    """Fewest replicas; the Deployment never runs fewer than one."""
    max_replicas: int | None = Field(default=None, ge=1)
    """Most replicas; an autoscaler is created when it is above minReplicas."""
    scale_target: int | None = Field(default=None, ge=1)
    """Target value of scaleMetric per replica: percent of the request for cpu and memory, requests in
    flight for concurrency (containerConcurrency when unset), requests per second for rps."""
    scale_metric: ScaleMetric | None = None
    """Metric the autoscaler follows: cpu (default), memory, concurrency or rps."""
    auto_scaling: AutoScalingSpec | None = None
    """KServe's list of metrics to scale on (cpu, memory, a Prometheus query), instead of scaleMetric and
    scaleTarget; see docs/autoscaling.md for what each autoscaler class does with them."""
    container_concurrency: int | None = Field(default=None, ge=0)
    """Most requests one replica serves at once, enforced by the model server (0: no limit); also the
    concurrency autoscaler's target when scaleTarget is unset. A runtime whose templates do not read
    container_concurrency (kubeserve-server does) cannot enforce it: FieldsSupported says so."""
    timeout: int | None = Field(default=None, ge=1)
    """Time limit, in seconds, for one request, enforced by the model server: only by a runtime whose
    templates read timeout (kubeserve-server does); FieldsSupported names it for any other."""
    canary_traffic_percent: int | None = Field(default=None, ge=0, le=100)
    """Percent of traffic sent to the latest revision, the rest going to the last rolled-out one.
    Unset or 100 promotes the latest revision; 0 rolls back."""
    logger: LoggerSpec | None = None
    """Request and response logging, by the model server."""
    batcher: BatcherSpec | None = None
    """Request batching, by the model server."""
    deployment_strategy: KubeObject | None = None
    """Strategy of the component's Deployment (type RollingUpdate or Recreate); RollingUpdate 25%/25% when
    unset."""
    service_account_name: str | None = Field(default=None, max_length=253)
    """ServiceAccount of the pods; its secrets and annotations give the storage credentials."""
    runtime_class_name: str | None = None
    """RuntimeClass of the pods."""
    priority_class_name: str | None = None
    """PriorityClass of the pods."""
    topology_spread_constraints: list[KubeObject] | None = None
    """How the pods spread across zones and nodes."""
    init_containers: list[Container] | None = None
    """Containers run before the model server, after the storage initializer."""
    security_context: KubeObject | None = None
    """Pod-level security options."""
    scheduler_name: str | None = None
    """Scheduler that places the pods."""
    termination_grace_period_seconds: int | None = Field(default=None, ge=0)
    """Time a pod has to finish in-flight requests when it stops."""
    dns_policy: str | None = None
    """DNS policy of the pods."""
    dns_config: KubeObject | None = None
    """DNS options of the pods."""
    host_aliases: list[KubeObject] | None = None
    """Entries added to the pods' /etc/hosts."""
    automount_service_account_token: bool | None = None
    """Whether the ServiceAccount's token is mounted into the pods."""


MODEL_CONTAINER = "kserve-container"
"""KServe's name for the container that serves the model."""
_MODEL_KEYS_SET = (
    "[" + ", ".join(f"has(self.{key})" for key in ("model", *LEGACY_FRAMEWORKS)) + "].filter(x, x).size()"
)


class PredictorSpec(ComponentSpec):
    """The predictor: serves the model, given as model, custom containers, or a legacy framework key."""

    cel_rules = (
        CelRule(
            expression=f"{_MODEL_KEYS_SET} == 1 || ({_MODEL_KEYS_SET} == 0 && has(self.containers))",
            message="predictor must set exactly one of model, containers, or one framework key ("
            + ", ".join(LEGACY_FRAMEWORKS)
            + "); containers may also run beside a model (a collocated transformer)",
            holds=lambda spec: len(spec.implementations()) == 1,
        ),
        CelRule(
            expression=f"{_MODEL_KEYS_SET} == 0 || !has(self.containers) "
            f"|| self.containers.all(c, c.name != '{MODEL_CONTAINER}')",
            message="with a model, containers run beside the model server in its pod (a collocated "
            f"transformer): none may be named {MODEL_CONTAINER}, which is the model server's container",
            holds=lambda spec: (
                not spec.collocated() or all(c.name != MODEL_CONTAINER for c in spec.collocated())
            ),
            field_path=".containers",
        ),
        CelRule(
            expression="!has(self.storageUris) || !("
            + " || ".join(
                f"(has(self.{key}) && (has(self.{key}.storageUri) || has(self.{key}.storage)))"
                for key in ("model", *LEGACY_FRAMEWORKS)
            )
            + ")",
            message="storageUris cannot be set with the model's storageUri or storage: list every location "
            "in storageUris, or use storageUri alone",
            holds=lambda spec: (
                spec.storage_uris is None
                or all(
                    getattr(spec, key) is None
                    or (getattr(spec, key).storage_uri is None and getattr(spec, key).storage is None)
                    for key in ("model", *LEGACY_FRAMEWORKS)
                )
            ),
            field_path=".storageUris",
        ),
    )

    model: ModelSpec | None = None
    """The model to serve, with its format and storage; the serving runtime is chosen by format."""
    sklearn: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat sklearn."""
    xgboost: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat xgboost."""
    lightgbm: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat lightgbm."""
    onnx: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat onnx."""
    pytorch: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat pytorch."""
    tensorflow: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat tensorflow."""
    triton: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat triton."""
    huggingface: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat huggingface."""
    pmml: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat pmml."""
    paddle: PredictorExtensionSpec | None = None
    """Legacy form of model with modelFormat paddle."""
    worker_spec: KubeObject | None = None
    """KServe's multi-node serving (worker pods, tensorParallelSize, pipelineParallelSize): read, but not
    served; the predictor gets Ready False with reason Unsupported."""

    def implementations(self) -> list[str]:
        """The keys that say how the model is served (model or a framework key, else containers): one, if
        valid. Containers beside a model are its collocated sidecars, not a second way to serve it."""
        keys = [key for key in ("model", *LEGACY_FRAMEWORKS) if getattr(self, key) is not None]
        return keys or (["containers"] if self.containers is not None else [])

    def collocated(self) -> list[Container]:
        """Containers that run beside the model server in its pod (KServe's collocated transformer)."""
        model_set = any(getattr(self, key) is not None for key in ("model", *LEGACY_FRAMEWORKS))
        return list(self.containers or []) if model_set else []

    def effective_model(self) -> ModelSpec | None:
        """The model to serve, a legacy framework key read as `model` of that format; None for containers."""
        if self.model is not None:
            return self.model
        for framework in LEGACY_FRAMEWORKS:
            legacy: PredictorExtensionSpec | None = getattr(self, framework)
            if legacy is not None:
                return ModelSpec.model_validate({**legacy.to_dict(), "modelFormat": {"name": framework}})
        return None


class TransformerSpec(ComponentSpec):
    """The transformer: custom containers that pre- and post-process requests in front of the predictor."""

    containers: Annotated[list[Container], Field(min_length=1, max_length=16)]
    """Containers of the transformer; the first one serves. It reaches the predictor at
    <isvc>-predictor.<namespace>."""


class ExplainerSpec(ComponentSpec):
    """The explainer: custom containers that explain the predictor's predictions."""

    containers: Annotated[list[Container], Field(min_length=1, max_length=16)]
    """Containers of the explainer; the first one serves."""
