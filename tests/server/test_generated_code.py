"""The checked-in gRPC messages are what protoc makes from the checked-in proto (see proto/__init__.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2] / "runtime-images" / "python"
PROTO = "kubeserve_server/proto/grpc_predict_v2.proto"


@pytest.mark.parametrize("generated", ["grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi"])
def test_generated_messages_match_the_proto(tmp_path: Path, generated: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{SOURCE_ROOT}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            PROTO,
        ],
        check=True,
        timeout=60,
    )
    fresh = (tmp_path / PROTO).with_name(generated).read_text()
    checked_in = (SOURCE_ROOT / PROTO).with_name(generated).read_text()
    assert fresh == checked_in, (
        f"{generated} is stale: regenerate it as kubeserve_server/proto/__init__.py says"
    )
