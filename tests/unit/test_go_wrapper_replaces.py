"""The wrapper module that builds KEDA carries KEDA's own version pins (`replace` lines), and only those."""

from __future__ import annotations

from kubeserve.devcluster import build

GO_MOD = """\
module github.com/example/tool/v2

go 1.26.0

replace (
	// pin k8s.io to v0.35.5
	k8s.io/api => k8s.io/api v0.35.5
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	sigs.k8s.io/controller-runtime => sigs.k8s.io/controller-runtime v0.23.3
)

replace github.com/nexus-rpc/annotations v0.1.0 => github.com/nexus-rpc/annotations v0.1.1-0.2026-835bd8d

require (
	k8s.io/api v0.36.0
	github.com/prometheus/common v0.66.1 // indirect
)
"""


def test_version_pins_are_kept_in_either_form_and_local_directories_are_not() -> None:
    assert build.version_replaces(GO_MOD) == [
        "\tk8s.io/api => k8s.io/api v0.35.5",
        "\tsigs.k8s.io/controller-runtime => sigs.k8s.io/controller-runtime v0.23.3",
        "\tgithub.com/nexus-rpc/annotations v0.1.0 => github.com/nexus-rpc/annotations v0.1.1-0.2026-835bd8d",
    ]


def test_a_go_mod_without_replace_lines_gives_none() -> None:
    assert build.version_replaces("module x\n\nrequire k8s.io/api v0.36.0\n") == []
