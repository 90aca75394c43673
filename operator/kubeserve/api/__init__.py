"""Kubeserve's API, `serving.kubeserve.io/v1beta1`: typed models that validate in code and generate the CRDs.

Parse an object read from the API server with `InferenceService.model_validate(obj)`
(or a spec alone with `InferenceServiceSpec.model_validate(spec)`); `.to_dict()`
gives back KServe-shaped JSON. Invalid input raises `pydantic.ValidationError`
whose messages name the field, the same rules the API server enforces.
"""

from kubeserve.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Container,
    ContainerFields,
    EnvVar,
    ObjectMeta,
    ResourceRequirements,
    Toleration,
)
from kubeserve.api.components import (
    LEGACY_FRAMEWORKS,
    ComponentName,
    ComponentSpec,
    ExplainerSpec,
    ModelFormat,
    ModelSpec,
    PredictorExtensionSpec,
    PredictorSpec,
    ProtocolVersion,
    ScaleMetric,
    TransformerSpec,
)
from kubeserve.api.inference_service import InferenceService, InferenceServiceSpec
from kubeserve.api.serving_runtime import (
    ClusterServingRuntime,
    ServingRuntime,
    ServingRuntimeSpec,
    SupportedModelFormat,
)
from kubeserve.api.status import (
    PREVIOUS_REVISION_TAG,
    Address,
    ComponentStatus,
    Condition,
    InferenceServiceStatus,
    RuntimeStatus,
    TrafficTarget,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "LEGACY_FRAMEWORKS",
    "PREVIOUS_REVISION_TAG",
    "VERSION",
    "Address",
    "ClusterServingRuntime",
    "ComponentName",
    "ComponentSpec",
    "ComponentStatus",
    "Condition",
    "Container",
    "ContainerFields",
    "EnvVar",
    "ExplainerSpec",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "ModelFormat",
    "ModelSpec",
    "ObjectMeta",
    "PredictorExtensionSpec",
    "PredictorSpec",
    "ProtocolVersion",
    "ResourceRequirements",
    "RuntimeStatus",
    "ScaleMetric",
    "ServingRuntime",
    "ServingRuntimeSpec",
    "SupportedModelFormat",
    "Toleration",
    "TrafficTarget",
    "TransformerSpec",
]
