"""The InferenceService: a model served behind a URL, made of a predictor and optionally a transformer and
an explainer."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from kubeserve.api.common import API_VERSION, ApiModel, CelRule, ObjectMeta
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


MAX_NAME_LENGTH = 44
"""The longest child name is `<name>-transformer-canary` (a Service, so at most 63 characters)."""
_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE = CelRule(
    expression=f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{_NAME}')",
    message=f"metadata.name must be at most {MAX_NAME_LENGTH} characters of lower-case letters, digits and "
    "'-', starting with a letter and ending with a letter or digit (a DNS-1035 label, as KServe asks), so "
    "that every child's name, up to `<name>-transformer-canary`, is a valid Service name",
    holds=lambda isvc: (
        isvc.metadata.name is None
        or (
            len(isvc.metadata.name) <= MAX_NAME_LENGTH and re.fullmatch(_NAME, isvc.metadata.name) is not None
        )
    ),
)


class InferenceService(ApiModel):
    """An InferenceService object as the API server returns it: `InferenceService.model_validate(obj)`."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (NAME_RULE,)

    api_version: str = API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None
