"""The OpenAPI document served at /openapi.json, describing the REST routes for this one model.

The model name is an enum, because this server serves exactly one model; clients and fuzzers
then reach the model itself rather than only its 404.
"""

from __future__ import annotations

from typing import Any

from kubeserve_server import __version__
from kubeserve_server.protocol import DTYPES

_ERROR = {
    "description": "The request was refused; `error` says why.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
        }
    },
}
# 503 also when the request's deadline passed while it waited for a turn (--container_concurrency),
# 504 when the model did not answer in time (--request_timeout).
_INFER_ERRORS = {status: _ERROR for status in ("400", "404", "413", "415", "503", "504")}
_PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
_TENSOR_META: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": list(DTYPES)},
                    "parameters": _PARAMETERS,
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
            },
        },
    },
}
_INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "outputs": {
            "type": "array",
            "items": {
                **_TENSOR_META,
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    **_TENSOR_META["properties"],
                    "data": {"type": "array"},
                    "parameters": _PARAMETERS,
                },
            },
        },
    },
}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(summary: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    responses = {"200": _json_response(summary, schema)}
    responses.update({status: _ERROR for status in errors})
    return {"get": {"summary": summary, "responses": responses}}


def openapi_document(model_name: str) -> dict[str, Any]:
    name = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name]},
    }
    version = {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}
    ready = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    metadata = {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META},
            "outputs": {"type": "array", "items": _TENSOR_META},
        },
    }
    infer = {
        "post": {
            "summary": "Run the model on v2 tensors",
            "description": "Also takes the binary tensor data extension: an application/octet-stream body "
            "whose first Inference-Header-Content-Length bytes are this JSON, raw tensor data after it.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _INFER_REQUEST}}},
            "responses": {
                "200": _json_response("The outputs", _INFER_RESPONSE),
                **_INFER_ERRORS,
            },
        }
    }
    v1_predict = {
        "post": {
            "summary": "Run the model on v1 instances",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "instances": {"type": "array", "minItems": 1},
                                "inputs": {"type": "array", "minItems": 1},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json_response(
                    "The predictions", {"type": "object", "properties": {"predictions": {"type": "array"}}}
                ),
                **_INFER_ERRORS,
            },
        }
    }
    with_version = {"parameters": [name, version]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kubeserve model server", "version": __version__},
        "paths": {
            "/v2/health/live": _get("Server is live", {"type": "object"}),
            "/v2/health/ready": _get("Server is ready", {"type": "object"}, "503"),
            "/v2": _get("Server metadata", {"type": "object"}),
            "/v2/models/{model_name}": {
                "parameters": [name],
                **_get("Model metadata", metadata, "404", "503"),
            },
            "/v2/models/{model_name}/versions/{model_version}": {
                **with_version,
                **_get("Model metadata", metadata, "404", "503"),
            },
            "/v2/models/{model_name}/ready": {
                "parameters": [name],
                **_get("Model readiness", ready, "404", "503"),
            },
            "/v2/models/{model_name}/versions/{model_version}/ready": {
                **with_version,
                **_get("Model readiness", ready, "404", "503"),
            },
            "/v2/models/{model_name}/infer": {"parameters": [name], **infer},
            "/v2/models/{model_name}/versions/{model_version}/infer": {**with_version, **infer},
            "/": _get("Server is live (KServe's v1 shape)", {"type": "object"}),
            "/v1/models": _get("Models served", {"type": "object"}),
            "/v1/models/{model_name}": {"parameters": [name], **_get("Model readiness", ready, "404", "503")},
            "/v1/models/{model_name}:predict": {"parameters": [name], **v1_predict},
        },
    }
