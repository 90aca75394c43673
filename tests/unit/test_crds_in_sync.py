"""The checked-in CRDs are exactly what the API models generate; run `make crds` after changing a model."""

from __future__ import annotations

from kubeserve.api import crdgen
from tests.unit.crd_schema import CRD_DIR


def test_crds_match_the_models() -> None:
    generated = crdgen.render()
    on_disk = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert sorted(on_disk) == sorted(generated), "crds/ has other files than the models make; run make crds"
    for name, text in generated.items():
        assert on_disk[name] == text, f"crds/{name} is out of date with the API models; run make crds"


def test_every_crd_starts_with_the_generated_header() -> None:
    for path in CRD_DIR.glob("*.yaml"):
        assert path.read_text().startswith(crdgen.HEADER)
