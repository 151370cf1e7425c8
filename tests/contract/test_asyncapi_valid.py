"""The AsyncAPI documents parse without an error under the reference parser (@asyncapi/parser,
pinned in tools/asyncapi), so a client generator can take them as they are."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "asyncapi"
DOCUMENTS = sorted((ROOT / "docs" / "asyncapi").glob("*.json"))
# npm ci on a cold cache fetches ~170 small packages; a busy machine needs time.
INSTALL_TIMEOUT_S = 600
PARSE_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def validator() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node, "node is needed to validate the AsyncAPI documents"
    assert npm, "npm is needed to install the AsyncAPI parser"
    if not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=TOOL, check=True, timeout=INSTALL_TIMEOUT_S
        )
    return [node, str(TOOL / "validate.mjs")]


def test_there_is_a_document_per_service() -> None:
    assert [d.stem for d in DOCUMENTS] == ["audit", "consent", "identity"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.stem)
def test_the_document_parses_without_an_error(validator: list[str], document: Path) -> None:
    run = subprocess.run(
        [*validator, str(document)],
        check=False,
        capture_output=True,
        text=True,
        timeout=PARSE_TIMEOUT_S,
    )
    diagnostics = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert errors == [], errors
    assert run.returncode == 0, run.stderr
