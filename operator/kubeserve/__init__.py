"""Kubeserve: a Kubernetes operator for model serving."""
