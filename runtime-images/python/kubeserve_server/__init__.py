"""Kubeserve's model server: the Open Inference Protocol (v2), the v1 protocol and gRPC for one model."""

__version__ = "0.1.0"
