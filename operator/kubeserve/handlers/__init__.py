"""The kopf handlers: thin wiring from watch events to the view and the reconciler."""

from kubeserve.handlers import lifecycle, traffic, watches

__all__ = ["lifecycle", "traffic", "watches"]
