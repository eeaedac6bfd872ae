"""Regenerate the README's generated sections (settings table) from the code.

Usage: .venv/bin/python scripts/readme_tables.py  (a test checks the README is up to date)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.settings import setting_docs  # noqa: E402


def settings_table() -> str:
    """The configuration table, one row per setting the code reads."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for name, (default, doc) in setting_docs().items():
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `{name}` | {shown} | {doc} |")
    return "\n".join(rows)


def replace_section(text: str, name: str, body: str) -> str:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {name} section")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> None:
    readme = REPO / "README.md"
    text = replace_section(readme.read_text(encoding="utf-8"), "settings-table", settings_table())
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
