"""Which refusals of the API server are worth retrying: a 500 that refuses the content is not."""

from __future__ import annotations

import pytest

from kubeserve.apply.client import ApiError


@pytest.mark.parametrize(
    ("status", "message", "transient"),
    [
        (409, "the object has been modified", True),
        (429, "too many requests", True),
        (503, "etcdserver: request timed out", True),
        (500, "Internal error occurred: failed calling webhook", True),
        (
            500,
            "failed to convert new object (ml/iris; apps/v1, Kind=Deployment) to smd typed: .spec: "
            "quantities must match the regular expression",
            False,
        ),
        (
            500,
            "failed to create typed patch object (ml/iris; apps/v1, Kind=Deployment): .spec.template.spec"
            '.containers[name="c"].readinessProbe.httpGet.path: expected string, got 1',
            False,
        ),
        (422, "Deployment.apps is invalid", False),
        (403, "forbidden", False),
    ],
)
def test_retries_follow_status_and_content(status: int, message: str, transient: bool) -> None:
    assert ApiError(status, message).transient is transient
