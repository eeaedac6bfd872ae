"""The infra tests' shared part: a small evaluator over pycep's JSON, and the facts they share.

Nothing here reaches Azure. The Bicep files are parsed with ``pycep`` and the facts are read from
the parsed structure by a small evaluator (:class:`Scope`) that follows parameters, variables,
``union``/``items`` and module outputs across files, so the checks hold however a template is
refactored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
APP = INFRA / "app"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Host and platform settings: read by the Functions host or its extensions, not by shared.settings.
HOST_SETTING_PREFIXES = (
    "FUNCTIONS_",
    "APPLICATIONINSIGHTS_",
    "AzureWebJobs",
    "EventHubConnection__",
    "AnomaliesConnection__",
    "DEPLOYMENT_",
)

# Text that would mean a secret travels in a setting, an output or a template.
SECRET_MARKERS = re.compile(
    r"AccountKey=|SharedAccessKey|SharedAccessSignature|listConnectionStrings|listAccountSas|"
    r"listServiceSas|primaryKey|secondaryKey",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# A small evaluator over pycep's JSON.


@dataclass(frozen=True)
class Runtime:
    """A value known only at deployment time (a resource property, uniqueString, ...)."""

    text: str

    def __str__(self) -> str:
        return "${" + self.text + "}"


@dataclass
class BicepFile:
    """One parsed template."""

    path: Path
    doc: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name) or {}
        assert isinstance(value, dict)
        return value

    @property
    def params(self) -> dict[str, Any]:
        return self.section("parameters")

    @property
    def variables(self) -> dict[str, Any]:
        return self.section("variables")

    @property
    def resources(self) -> dict[str, Any]:
        return self.section("resources")

    @property
    def modules(self) -> dict[str, Any]:
        return self.section("modules")

    @property
    def outputs(self) -> dict[str, Any]:
        return self.section("outputs")

    def symbols(self) -> set[str]:
        return {*self.params, *self.variables, *self.resources, *self.modules}


@cache
def parse(path: Path) -> BicepFile:
    """Parse a template once per test session."""
    doc: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return BicepFile(path, doc)


def body(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """The object of a resource or module, through ``if (...)`` and ``[for ...]`` wrappers."""
    config = declaration["config"]
    while isinstance(config, dict) and ("condition" in config or "loop_type" in config):
        if "config" not in config:
            break
        config = config["config"]
    assert isinstance(config, dict)
    return config


def condition(declaration: Mapping[str, Any]) -> Any:
    """The ``if (...)`` condition of a resource or module, or None."""
    config = declaration["config"]
    return config.get("condition") if isinstance(config, dict) else None


def accessor_path(expr: Any) -> list[Any] | None:
    """``a.b.c`` as ``["a", "b", "c"]`` (the first element may be an expression)."""
    if not (isinstance(expr, dict) and "operator" in expr):
        return None
    operator = expr["operator"]
    if operator.get("type") != "property_accessor":
        return None
    operands = operator["operands"]
    rest = accessor_path(operands["operand_2"])
    return [operands["operand_1"], *(rest if rest is not None else [operands["operand_2"]])]


def dotted(expr: Any) -> str:
    """A reference expression as text (``identity.outputs.appIdentityId``), for comparisons."""
    if isinstance(expr, str):
        return expr
    path = accessor_path(expr)
    if path is not None:
        return ".".join(dotted(part) for part in path)
    if isinstance(expr, dict) and "operator" in expr:
        operator = expr["operator"]
        if operator.get("type") == "function_accessor":
            operands = operator["operands"]
            return f"{dotted(operands['operand_1'])}.{operands['func_name']}()"
    return json.dumps(expr, sort_keys=True)


def module_file(caller: BicepFile, symbol: str) -> Path:
    relative = str(caller.modules[symbol]["detail"]["path"])
    return (caller.path.parent / relative).resolve()


@dataclass(frozen=True)
class Scope:
    """Where an expression is evaluated: a file, its caller's arguments, loop variables."""

    file: BicepFile
    arguments: Mapping[str, Any] = field(default_factory=dict)
    caller: Scope | None = None
    loop: Mapping[str, Any] = field(default_factory=dict)

    def callee(self, module_symbol: str) -> Scope:
        """The scope inside a module called from this file."""
        module = parse(module_file(self.file, module_symbol))
        params = body(self.file.modules[module_symbol]).get("params", {})
        return Scope(module, params, self)

    def symbol(self, name: str) -> Any:
        if name in self.loop:
            return self.loop[name]
        if name in self.file.variables:
            return self.eval(self.file.variables[name]["value"])
        if name in self.file.params:
            if name in self.arguments and self.caller is not None:
                return self.caller.eval(self.arguments[name])
            default = self.file.params[name].get("default")
            return Runtime(name) if default is None else self.eval(default)
        return Runtime(name)  # a resource or module reference

    def eval(self, expr: Any) -> Any:  # noqa: C901 - one branch per pycep node kind
        """Evaluate what can be known offline; the rest becomes :class:`Runtime`."""
        if expr is None or isinstance(expr, bool | int | float):
            return expr
        if isinstance(expr, str):
            if expr in self.loop or expr in self.file.symbols():
                return self.symbol(expr)
            return self.interpolate(expr) if "${" in expr else expr
        if isinstance(expr, list):
            return [self.eval(item) for item in expr]
        if "loop_type" in expr:
            detail = expr["loop_type"]["detail"]
            source = self.eval(detail["array_name"])
            if not isinstance(source, list):
                return Runtime(f"for {detail['item_name']} in {source}")
            return [
                Scope(
                    self.file, self.arguments, self.caller, {**self.loop, detail["item_name"]: x}
                ).eval(expr["config"])
                for x in source
            ]
        if "function" in expr and len(expr) == 1:
            return self.call(expr["function"])
        if "operator" in expr and len(expr) == 1:
            path = accessor_path(expr)
            if path is not None:
                return self.access(path)
            operator = expr["operator"]
            if operator["type"] == "conditional":
                test = self.eval(operator["operands"]["condition"])
                if isinstance(test, bool):
                    branch = "true_value" if test else "false_value"
                    return self.eval(operator["operands"][branch])
            return Runtime(dotted(expr))
        return {key: self.eval(value) for key, value in expr.items()}

    def call(self, function: Mapping[str, Any]) -> Any:
        kind = function["type"]
        args = [self.eval(arg) for arg in function.get("parameters", {}).values()]
        if kind == "union" and all(isinstance(arg, dict) for arg in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if kind == "items" and isinstance(args[0], dict):
            return [{"key": k, "value": v} for k, v in sorted(args[0].items(), key=lambda i: i[0])]
        if kind == "string" and isinstance(args[0], bool | int | float | str):
            return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])
        return Runtime(f"{kind}({', '.join(map(str, args))})")

    def access(self, path: list[Any]) -> Any:
        head, *rest = path
        if isinstance(head, str) and head in self.file.modules and rest[:1] == ["outputs"]:
            callee = self.callee(head)
            value = callee.eval(callee.file.outputs[rest[1]]["value"])
            rest = rest[2:]
        elif isinstance(head, str) and head in self.file.resources and rest == ["name"]:
            return self.eval(body(self.file.resources[head])["name"])
        else:
            value = self.eval(head) if not isinstance(head, str) else self.symbol(head)
        for key in rest:
            if isinstance(value, dict) and isinstance(key, str) and key in value:
                value = value[key]
            else:
                return Runtime(".".join(map(str, [value, *rest])))
        return value

    def interpolate(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", inner):
                head, *rest = inner.split(".")
                return str(self.access([head, *rest]) if rest else self.eval(head))
            return match.group(0)

        return re.sub(r"\$\{([^{}]*)\}", replace, text)


# --------------------------------------------------------------------------------------------
# Facts the tests share.


def main_scope() -> Scope:
    return Scope(parse(MAIN))


def module_symbol(path: Path) -> str:
    """The symbol under which main.bicep calls ``path``."""
    main = parse(MAIN)
    found = [s for s in main.modules if module_file(main, s) == path.resolve()]
    assert len(found) == 1, f"main.bicep must call {path.name} exactly once, found {found}"
    return found[0]


def resources_of(file: BicepFile, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: declaration
        for name, declaration in file.resources.items()
        if declaration["type"] == resource_type and not declaration["existing"]
    }


def the_resource(file: BicepFile, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(file, resource_type)
    assert len(found) == 1, f"{file.path.name}: expected one {resource_type}, found {list(found)}"
    return next(iter(found.items()))


def api_scope() -> Scope:
    return main_scope().callee(module_symbol(APP / "api.bicep"))


def function_app() -> dict[str, Any]:
    sites = resources_of(api_scope().file, "Microsoft.Web/sites")
    assert len(sites) == 1, f"api.bicep must declare one function app, found {list(sites)}"
    return next(iter(sites.values()))


def cloud_setting_exprs() -> dict[str, Any]:
    """The function app's settings, ``{name: value}`` as evaluated offline."""
    scope = api_scope()
    site = body(function_app())
    entries = site["properties"]["siteConfig"]["appSettings"]
    settings = scope.eval(entries)
    assert isinstance(settings, list), f"appSettings is not a list offline: {settings}"
    result: dict[str, Any] = {}
    for entry in settings:
        assert isinstance(entry["name"], str), f"app setting name unknown offline: {entry}"
        assert entry["name"] not in result, f"app setting {entry['name']} set twice"
        result[entry["name"]] = entry["value"]
    return result


def sample_settings() -> dict[str, str]:
    values = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))
    assert isinstance(values.get("Values"), dict)
    return dict(values["Values"])


def decorators(declaration: Mapping[str, Any]) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in declaration.get("decorators", [])}


def azd_generates(param: Mapping[str, Any]) -> bool:
    """Whether azd generates the parameter's value (``@metadata({azd: {type: 'generate'}})``)."""
    metadata = decorators(param).get("metadata") or {}
    return isinstance(metadata, dict) and metadata.get("azd", {}).get("type") == "generate"


def is_host_setting(name: str) -> bool:
    return name.startswith(HOST_SETTING_PREFIXES)


def walk(expr: Any) -> Iterator[Any]:
    """Every node of a pycep expression."""
    yield expr
    if isinstance(expr, dict):
        for value in expr.values():
            yield from walk(value)
    elif isinstance(expr, list):
        for value in expr:
            yield from walk(value)


def uses_list_function(expr: Any) -> bool:
    for node in walk(expr):
        if isinstance(node, dict):
            function = node.get("function")
            if isinstance(function, dict) and function.get("type") == "list_func":
                return True
            operator = node.get("operator")
            if isinstance(operator, dict) and operator.get("type") == "function_accessor":
                if str(operator["operands"].get("func_name", "")).lower().startswith("list"):
                    return True
        if isinstance(node, str) and re.search(r"\blist\w*\(", node, re.IGNORECASE):
            return True
    return False
