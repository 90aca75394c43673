"""The image definitions, checked without a Docker engine: hadolint on every Dockerfile, and what
each image runs (its ENTRYPOINT, its pip extras) checked against the project itself.
"""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "runtime-images").glob("*/Dockerfile*"))
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def ids(paths: list[Path]) -> list[str]:
    return [path.relative_to(REPO / "runtime-images").as_posix() for path in paths]


def test_every_image_is_here() -> None:
    assert ids(DOCKERFILES) == [
        "activator/Dockerfile",
        "model-server/Dockerfile",
        "model-server/Dockerfile.gpu",
        "operator/Dockerfile",
        "storage-initializer/Dockerfile",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def base_images(dockerfile: Path) -> list[str]:
    """The image of each FROM, with the build arguments declared before the first FROM at their
    defaults: what a plain `docker build` uses."""
    steps = instructions(dockerfile)
    first_from = next(i for i, (name, _) in enumerate(steps) if name == "FROM")
    defaults = dict(args.partition("=")[::2] for name, args in steps[:first_from] if name == "ARG")
    return [
        re.sub(r"\$\{?(\w+)\}?", lambda arg: defaults[arg.group(1)], args.split()[0])
        for name, args in steps
        if name == "FROM"
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_multi_stage_with_pinned_bases(dockerfile: Path) -> None:
    bases = base_images(dockerfile)
    assert len(bases) >= 2, "build in one stage, copy only the virtualenv into the next"
    assert len(set(bases)) == 1, "one base for every stage, so that the virtualenv's interpreter stays valid"
    for base in bases:
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?", base), (
            f"{base}: pin a versioned tag"
        )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    """Numeric, so that Kubernetes' runAsNonRoot can check it; the last USER of the final stage counts."""
    users = [args for name, args in final_stage(dockerfile) if name == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_installs_only_extras_that_exist(dockerfile: Path) -> None:
    installs = [args for name, args in instructions(dockerfile) if name == "RUN" and "pip install" in args]
    assert installs
    named = {
        extra
        for run in installs
        for group in re.findall(r"\.\[([\w,-]+)\]", run)
        for extra in group.split(",")
    }
    assert named <= set(PYPROJECT["project"]["optional-dependencies"]), named
    assert "dev" not in named


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_copies_only_what_exists_and_reaches_the_builder(dockerfile: Path) -> None:
    """Each COPY source is in the repository and let through by the root .dockerignore's allowlist."""
    allowed = [line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for name, args in instructions(dockerfile):
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert any(
                    source.rstrip("/") == entry or source.startswith(f"{entry}/") for entry in allowed
                ), f"COPY {source}: .dockerignore keeps it from the builder"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_entrypoint_is_an_installed_console_script_that_answers_help(dockerfile: Path) -> None:
    """The command the image runs is one of the project's scripts, and it starts: `--help` exits 0."""
    entrypoints = [json.loads(args) for name, args in final_stage(dockerfile) if name == "ENTRYPOINT"]
    assert len(entrypoints) == 1, "one exec-form ENTRYPOINT"
    command = entrypoints[0]
    assert command[0] in PYPROJECT["project"]["scripts"]
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout.lower()
