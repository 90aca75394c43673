"""The `kubeserve` command line."""
