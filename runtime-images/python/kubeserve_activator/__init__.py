"""Kubeserve's activator: holds requests for a service scaled to zero, wakes it, and forwards them.

Only cold traffic reaches it: while a service has Ready pods its EndpointSlice points at them, and at
the activator's pods only while there are none. The cluster is reached through three small interfaces
(`interfaces.py`), so the request path is tested over real HTTP without a cluster.
"""
