"""Cold-start cost: ``import function_app`` in a fresh process, wall time and peak memory.

Each run is a new ``.venv/bin/python -c "import function_app"`` from the repository root, with
the app settings of ``local.settings.sample.json`` in its environment (as the Functions host
sets them) and ``AzureWebJobsStorage=UseDevelopmentStorage=true``. Wall time covers the whole
process (interpreter start included); peak RSS comes from ``wait4`` for that one process,
spawned by a small launcher so that the suite's own memory does not leak into the figure. One
untimed run first warms the OS file cache; the figures are medians. A bare ``python -c pass``
is measured the same way as the baseline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from bench.harness import NotAvailable, PartReport, Results, median

REPO = Path(__file__).resolve().parents[1]
APP_PYTHON = REPO / ".venv" / "bin" / "python"
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '((?:shared|functions)[\w.]*)'")


def app_environment(repo: Path = REPO) -> dict[str, str]:
    """Return the environment of a Functions host: ours plus the sample app settings."""
    env = dict(os.environ)
    sample = repo / "local.settings.sample.json"
    if sample.exists():
        values = json.loads(sample.read_text(encoding="utf-8")).get("Values", {})
        env.update({str(k): str(v) for k, v in values.items() if isinstance(v, str | int | float)})
    env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
    env.pop("PYTHONPATH", None)
    return env


#: A small launcher between the suite and the measured process. Linux carries a process's peak
#: RSS across fork and exec, so a child forked straight from the suite (numpy, pandas: 100+ MB)
#: would report the suite's size. Spawned from this ~10 MB launcher, the measured process
#: starts from the launcher's size instead, which is below any Python program's own.
_LAUNCHER = """
import json, os, sys, time
errors, program = sys.argv[1], sys.argv[2:]
actions = [
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_OPEN, 2, errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
]
start = time.perf_counter()
pid = os.posix_spawn(program[0], program, os.environ, file_actions=actions)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "maxrss_kib": usage.ru_maxrss,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""


def run_once(code: str, python: Path, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``python -c code`` once in a fresh process; return ``(wall s, peak RSS MiB)``.

    The process is spawned by a small launcher (see ``_LAUNCHER``); wall time is measured by
    the launcher from spawn to exit, so the launcher's own start is not counted.

    Raises:
        NotAvailable: The code failed on a meterwatch module that is not written yet.
        RuntimeError: The process failed; the message carries the end of its stderr.
    """
    with tempfile.TemporaryDirectory(prefix="meterwatch-import-") as folder:
        errors = Path(folder) / "stderr.txt"
        done = subprocess.run(
            [str(python), "-c", _LAUNCHER, str(errors), str(python), "-c", code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"import launcher failed: {done.stderr.strip()[-1500:]}")
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        if outcome["exit"] != 0:
            tail = errors.read_text(encoding="utf-8", errors="replace").strip()[-1500:]
            match = _MISSING_MODULE.search(tail)
            if match:  # a module another engineer has not written yet
                raise NotAvailable(f"{match.group(1)} is not written yet (import function_app)")
            raise RuntimeError(f"{code!r} exited {outcome['exit']}: {tail}")
    return float(outcome["wall_s"]), float(outcome["maxrss_kib"]) / 1024.0


def measure(repeats: int = 5, repo: Path = REPO, python: Path = APP_PYTHON) -> Results:
    """Measure ``import function_app`` and a bare interpreter start, ``repeats`` times each.

    Raises:
        NotAvailable: ``function_app.py`` or the app's ``.venv`` is missing.
    """
    if not (repo / "function_app.py").exists():
        raise NotAvailable("function_app.py is not written yet")
    if not python.exists():
        raise NotAvailable(f"{python} missing: run `make test` or `make demo` to create .venv")
    env = app_environment(repo)
    figures: Results = {}
    for label, code in (("python_startup", "pass"), ("import", "import function_app")):
        run_once(code, python, repo, env)  # warm the file cache
        runs = [run_once(code, python, repo, env) for _ in range(repeats)]
        figures[f"{label}_s"] = median(wall for wall, _ in runs)
        figures[f"{label}_mb"] = median(mb for _, mb in runs)
    return figures


def run(report: PartReport, quick: bool = False) -> None:
    """The ``import`` part: cold ``import function_app`` against a bare interpreter start."""
    report.results.update(measure(3 if quick else 7))
