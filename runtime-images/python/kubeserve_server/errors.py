"""Errors the data plane raises; every adapter maps them to its own status codes.

Each carries the HTTP status it stands for, because REST is the protocol whose codes the issue
pins down; the gRPC adapter maps from those.
"""


class InferenceError(Exception):
    """A request the server refuses or could not serve, with a message meant for the caller."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(InferenceError):
    status = 400


class ModelNotFound(InferenceError):
    status = 404


class PayloadTooLarge(InferenceError):
    status = 413


class ModelNotReady(InferenceError):
    status = 503


class UnsupportedMediaType(InferenceError):
    status = 415


class RequestTimeout(InferenceError):
    status = 408
