"""The azd layout: every file azd expects is there, every template parses, the
parameters file matches main.bicep's parameters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.bicep import (
    APP,
    BICEP_FILES,
    INFRA,
    MAIN,
    REPO,
    azd_generates,
    module_file,
    parse,
)


def test_azd_layout_is_complete() -> None:
    expected = {"api", "storage", "eventhubs", "iothub", "eventgrid", "monitoring", "identity"}
    expected.add("keyvault")
    present = {p.stem for p in APP.glob("*.bicep")}
    assert expected <= present, f"missing infra/app modules: {sorted(expected - present)}"
    assert [p.relative_to(INFRA).as_posix() for p in INFRA.rglob("rbac*.bicep")] == [
        "app/rbac.bicep"
    ], "exactly one rbac.bicep, in infra/app"
    assert (REPO / "azure.yaml").is_file() and (INFRA / "main.parameters.json").is_file()
    main = parse(MAIN)
    assert main.section("globals")["scope"]["value"] == "subscription"
    called = {module_file(main, symbol) for symbol in main.modules}
    unused = [p.name for p in APP.glob("*.bicep") if p.resolve() not in called]
    assert not unused, f"modules main.bicep never calls: {unused}"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.resources or parsed.modules, f"{path.name} declares nothing"


def test_parameters_file_matches_main() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    given = document["parameters"]
    params = parse(MAIN).params
    unknown = sorted(set(given) - set(params))
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {unknown}"
    required = sorted(
        n for n, p in params.items() if p.get("default") is None and not azd_generates(p)
    )
    assert set(required) <= set(given), f"required parameters not given: {required}"
    for name, entry in given.items():
        match = re.fullmatch(r"\$\{[A-Z0-9_]+(?:=([^}]*))?\}", str(entry["value"]))
        assert match, f"{name} should come from the azd environment (${{VAR}} or ${{VAR=default}})"
        default = params[name].get("default")
        if match.group(1) is not None and isinstance(default, bool | int | str):
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            assert match.group(1) == expected, (
                f"{name}: parameters file {match.group(1)!r} vs {default!r}"
            )
