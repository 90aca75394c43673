"""Errors the data plane raises; every adapter maps them to its own status codes.

Each carries the HTTP status it stands for: REST's statuses tell the most cases apart (400, 404,
408, 413, 415, 503), and the gRPC adapter maps its own codes from those.
"""


class InferenceError(Exception):
    """A request the server refuses or could not serve, with a message meant for the caller."""

    status = 500
    # Seconds a client should wait before it tries again, for statuses that say "not now".
    retry_after: int | None = None

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


class QueueTimeout(InferenceError):
    """The request's deadline passed while it waited for its turn: the server is overloaded.

    Another replica behind the Service may have room at once, so the client may retry soon.
    """

    status = 503
    retry_after = 1


class DeadlineExceeded(InferenceError):
    status = 504
