"""The kopf handlers: start-up and shutdown (`lifecycle`) and the optional CRDs' watch (`traffic`).

The view's own lists and watches are `kubeserve.cache`; these only start them and tell the reconciler.
"""

from kubeserve.handlers import lifecycle, traffic

__all__ = ["lifecycle", "traffic"]
