"""The operator's own copy of the cluster: the view, the watches that keep it current, their loop.

Nothing is imported here: `watches` needs the reconciler, which itself reads `observed`.
"""
