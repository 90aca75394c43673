"""A real local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) without Docker."""
