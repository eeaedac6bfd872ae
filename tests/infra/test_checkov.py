"""checkov over the templates: every skip comment gives a reason, and checkov passes.

``checkov`` runs from its own virtual environment (``.venv-tools``, made by
``scripts/tools-venv.sh``): under CI its absence fails the suite, locally it skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.infra.bicep import (
    BICEP_FILES,
    INFRA,
    REPO,
)

TOOLS_CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"

CHECKOV_SKIP = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(.*)$")

MIN_REASON_CHARS = 40


def skip_comments() -> list[tuple[str, int, str, str]]:
    """Every ``checkov:skip`` comment: (file, line, check id, reason)."""
    found = []
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = CHECKOV_SKIP.search(line)
            if match:
                reason = match.group(2).removeprefix(":").strip()
                found.append((path.name, number, match.group(1), reason))
    return found


def test_every_checkov_skip_has_a_reason() -> None:
    for file, line, check, reason in skip_comments():
        assert line > 0 and file.endswith(".bicep")
        assert re.fullmatch(r"CKV2?_AZURE_\d+", check), f"{file}:{line}: bad check id {check}"
        assert len(reason) >= MIN_REASON_CHARS, f"{file}:{line}: {check} needs a real reason"


def test_checkov_passes() -> None:
    if not TOOLS_CHECKOV.exists():
        message = f"checkov not installed at {TOOLS_CHECKOV}: run scripts/tools-venv.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    run = subprocess.run(
        [str(TOOLS_CHECKOV), "--directory", str(INFRA), "--framework", "bicep",
         "--output", "json", "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    report = json.loads(run.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0, results.get("parsing_errors")
    assert summary["passed"] > 0 and summary["resource_count"] > 0, summary
    failed = [(r["check_id"], r["resource"], r["file_path"]) for r in results["failed_checks"]]
    assert not failed, f"checkov failures (fix, or skip in place with a reason): {failed}"
    skipped = {(r["check_id"], r["resource"]) for r in results["skipped_checks"]}
    for record in results["skipped_checks"]:
        reason = record["check_result"].get("suppress_comment", "").strip().lstrip(":").strip()
        assert len(reason) >= MIN_REASON_CHARS, f"{record['check_id']} skipped without a reason"
    declared = [c[2] for c in skip_comments()]
    assert sorted(declared) == sorted(c for c, _ in skipped), "stale or unmatched skip comments"
    assert run.returncode == 0, run.stderr[-2000:]
