"""Kubeserve's own CRDs, when the API server does not serve them: said once, clearly, and by /readyz.

A newcomer who runs `kubeserve run` before applying the CRDs would otherwise see a 404 retried every
10 s, forever, with nothing saying what is missing or how to add it. The watches report each of
Kubeserve's kinds they find unserved (404) or served again; the first one missing is logged once as
an error with the command that fixes it, and /readyz answers with the same words until all are back.
"""

from __future__ import annotations

import logging

from kubeserve.api.common import GROUP
from kubeserve.apply.resources import Resource

logger = logging.getLogger(__name__)

HOW_TO_APPLY = (
    "apply them with `kubectl apply --server-side -f crds/` from a checkout of Kubeserve "
    "(or install the Helm chart, which carries them); the operator waits for them"
)


class MissingCrds:
    """The names (`inferenceservices.serving.kubeserve.io`) of Kubeserve's kinds the API server lacks."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    @staticmethod
    def owns(resource: Resource) -> bool:
        """Whether a 404 listing `resource` means one of Kubeserve's own CRDs is missing."""
        return resource.api_version.split("/")[0] == GROUP

    def message(self) -> str:
        missing = ", ".join(sorted(self.names))
        return f"Kubeserve's CRDs are not installed: the API server does not serve {missing}; {HOW_TO_APPLY}"

    def lost(self, resource: Resource) -> None:
        """The first kind found missing is logged as an error; the others join the /readyz message."""
        name = f"{resource.plural}.{GROUP}"
        if name in self.names:
            return
        first = not self.names
        self.names.add(name)
        if first:
            logger.error("%s", self.message())

    def found(self, resource: Resource) -> None:
        name = f"{resource.plural}.{GROUP}"
        if name in self.names:
            self.names.discard(name)
            if not self.names:
                logger.info("Kubeserve's CRDs are served now: going on")
