"""Every test folder is run by CI: by some job of the GitHub workflow, and by `make test` (.ci/run).

A folder added under tests/ and forgotten by the workflow would otherwise pass review and never run.
The commands are read as CI runs them: `make <target>` is expanded through the Makefile's recipes
(including `$(MAKE) <target>` inside them), and each pytest invocation covers its path arguments
minus its `--ignore`s.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def folders_with_tests() -> set[str]:
    """Folders under tests/ holding test files, as repository-relative paths."""
    return {
        PurePosixPath(path.parent.relative_to(REPO)).as_posix()
        for path in (REPO / "tests").rglob("test_*.py")
    }


def makefile_recipes(text: str) -> dict[str, list[str]]:
    """Each target's recipe, with continued lines joined into one command."""
    recipes: dict[str, list[str]] = {}
    target: str | None = None
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip().lstrip("@"))
        elif match := re.match(r"^([A-Za-z0-9_.$()/-]+):(?!=)", line):
            target = match.group(1)
            recipes[target] = []
        elif line and not line.startswith("#"):
            target = None
    return recipes


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line, split at `;`, `&&`, `||` and `|`."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    result: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= set(";&|"):
            result.append([])
        else:
            result[-1].append(token)
    return [command for command in result if command]


def pytest_runs(
    line: str, recipes: dict[str, list[str]], seen: frozenset[str] = frozenset()
) -> list[list[str]]:
    """The argument lists of every pytest that a shell line runs, make targets expanded."""
    runs: list[list[str]] = []
    for command in commands(line):
        for index, word in enumerate(command):
            if word.endswith("pytest"):
                runs.append(command[index + 1 :])
                break
            if word in ("make", "$(MAKE)"):
                targets = [arg for arg in command[index + 1 :] if not arg.startswith("-") and "=" not in arg]
                for target in targets:
                    if "/" in target:  # a file, such as the virtualenv: it runs no test
                        continue
                    assert target in recipes, f"`make {target}` names no target of the Makefile"
                    if target not in seen:
                        for recipe_line in recipes[target]:
                            runs += pytest_runs(recipe_line, recipes, seen | {target})
                break
    return runs


def covered(runs: list[list[str]], folders: set[str]) -> set[str]:
    """The folders that some pytest run collects: under one of its paths and under none of its ignores."""
    result: set[str] = set()
    for args in runs:
        ignores = [arg.removeprefix("--ignore=").rstrip("/") for arg in args if arg.startswith("--ignore=")]
        paths = [arg.rstrip("/") for arg in args if not arg.startswith("-")] or ["tests"]
        for folder in folders:
            inside = [p for p in paths if folder == p or folder.startswith(p + "/")]
            ignored = any(folder == i or folder.startswith(i + "/") for i in ignores)
            if inside and not ignored:
                result.add(folder)
    return result


RECIPES = makefile_recipes((REPO / "Makefile").read_text())


def workflow_runs() -> dict[str, list[list[str]]]:
    """Each job of every workflow, with the pytest runs of its steps."""
    jobs: dict[str, list[list[str]]] = {}
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            runs = jobs.setdefault(f"{path.name}:{name}", [])
            for step in job.get("steps", []):
                for line in step.get("run", "").splitlines():
                    runs += pytest_runs(line, RECIPES)
    return jobs


def test_every_test_folder_is_run_by_some_workflow_job() -> None:
    folders = folders_with_tests()
    jobs = workflow_runs()
    run = set().union(*(covered(runs, folders) for runs in jobs.values()))
    assert folders - run == set(), (
        f"no job of {WORKFLOWS.relative_to(REPO)} runs these: {sorted(folders - run)}"
    )


def test_make_test_runs_every_test_folder() -> None:
    """`make test` is what .ci/run runs."""
    assert "make test" in (REPO / ".ci" / "run").read_text().splitlines()
    folders = folders_with_tests()
    missed = folders - covered(pytest_runs("make test", RECIPES), folders)
    assert missed == set(), f"`make test` runs none of these: {sorted(missed)}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("make test-unit", {"tests/unit"}),
        (
            "make test-main",
            {
                "tests/unit",
                "tests/cluster",
                "tests/server",
                "tests/storage",
                "tests/images",
                "tests/activator",
            },
        ),
        ('sudo env "PATH=$PATH" KUBESERVE_REQUIRE_REAL_NODE=1 make test-node', {"tests/node"}),
        ("make lint", set()),
        (".venv/bin/pytest tests/server/test_tls.py", set()),
        (
            ".venv/bin/pytest tests --ignore=tests/e2e --ignore=tests/node --ignore=tests/images/",
            {"tests/unit", "tests/cluster", "tests/server", "tests/storage", "tests/activator"},
        ),
    ],
)
def test_the_reading_of_commands(line: str, expected: set[str]) -> None:
    """The reader itself: a target that runs nothing, a single file, or an ignore covers no folder."""
    assert covered(pytest_runs(line, RECIPES), folders_with_tests()) == expected
