"""The InferenceService: a model served behind a URL, made of a predictor and optionally a transformer and
an explainer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeserve.api.common import API_VERSION, ApiModel, ObjectMeta
from kubeserve.api.components import (
    ComponentName,
    ComponentSpec,
    ExplainerSpec,
    PredictorSpec,
    TransformerSpec,
)
from kubeserve.api.status import InferenceServiceStatus


class InferenceServiceSpec(ApiModel):
    """The desired state of an InferenceService, with KServe v1beta1's fields and meaning."""

    predictor: PredictorSpec
    """The component that serves the model."""
    transformer: TransformerSpec | None = None
    """Pre- and post-processing in front of the predictor; when present, it is the service's entry point."""
    explainer: ExplainerSpec | None = None
    """Explanations of the predictor's predictions."""

    def components(self) -> dict[ComponentName, ComponentSpec]:
        """The components present, predictor first."""
        present: dict[ComponentName, ComponentSpec | None] = {
            "predictor": self.predictor,
            "transformer": self.transformer,
            "explainer": self.explainer,
        }
        return {name: spec for name, spec in present.items() if spec is not None}


class InferenceService(ApiModel):
    """An InferenceService object as the API server returns it: `InferenceService.model_validate(obj)`."""

    api_version: str = API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None
