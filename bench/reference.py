"""Call the reference detector from the app's interpreter, through a subprocess.

The reference (``time-series-anomaly-detector`` 0.4.0, torch, mlflow) lives in its own virtual
environment, ``bench/.venv-ref``, which ``bench/run`` creates when it is missing. Jobs travel as
JSON files to :mod:`bench.reference_worker` and results come back the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import NotAvailable

BENCH = Path(__file__).resolve().parent
REFERENCE_VENV = BENCH / ".venv-ref"
REFERENCE_PYTHON = REFERENCE_VENV / "bin" / "python"
WORKER = BENCH / "reference_worker.py"
REFERENCE_PACKAGE = "time-series-anomaly-detector"
REFERENCE_VERSION = "0.4.0"


def reference_version(python: Path = REFERENCE_PYTHON) -> str:
    """Return the installed reference version, or raise :class:`NotAvailable` saying why.

    Args:
        python: The reference venv's interpreter.

    Raises:
        NotAvailable: The venv or the package is missing, or the version is not 0.4.0.
    """
    if not python.exists():
        raise NotAvailable(f"reference venv missing ({python}); run bench/run to create it")
    probe = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m; print(m.version({REFERENCE_PACKAGE!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise NotAvailable(f"{REFERENCE_PACKAGE} is not installed in {python.parent.parent}")
    version = probe.stdout.strip()
    if version != REFERENCE_VERSION:
        raise NotAvailable(f"{REFERENCE_PACKAGE} {version} found, {REFERENCE_VERSION} expected")
    return version


#: Install steps, in order: torch first, from its CPU build, or pip pulls GBs of CUDA wheels.
SETUP_STEPS: tuple[tuple[str, ...], ...] = (
    ("install", "--quiet", "--upgrade", "pip"),
    ("install", "--quiet", "torch==2.13.0"),
    ("install", "--quiet", f"{REFERENCE_PACKAGE}=={REFERENCE_VERSION}"),
)


def ensure_reference_venv(venv: Path = REFERENCE_VENV) -> str:
    """Create the reference venv when it is missing or incomplete; return the reference version.

    ``python -m venv bench/.venv-ref``, then ``pip install torch==2.13.0`` and then
    ``time-series-anomaly-detector==0.4.0`` (about 1.8 GB, a minute or two). Progress goes to
    stderr.

    Raises:
        NotAvailable: The install failed (no network, no disk): reference figures will be n/a.
    """
    python = venv / "bin" / "python"
    try:
        return reference_version(python)
    except NotAvailable as missing:
        sys.stderr.write(f"[bench] {missing}: setting up {venv} (torch CPU + reference)\n")
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
        if made.returncode != 0:
            raise NotAvailable(f"could not create {venv}")
    for step in SETUP_STEPS:
        sys.stderr.write(f"[bench] pip {' '.join(step)}\n")
        done = subprocess.run([str(python), "-m", "pip", *step], check=False)
        if done.returncode != 0:
            raise NotAvailable(f"pip {' '.join(step)} failed in {venv} (exit {done.returncode})")
    return reference_version(python)


def run_reference(job: dict[str, Any], timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run one job in the reference venv and return its result.

    Args:
        job: ``{"task": "entire" | "mv", ...}`` as :mod:`bench.reference_worker` reads it.
        timeout_s: Wall-clock limit for the whole subprocess (import included).

    Returns:
        The worker's result document.

    Raises:
        NotAvailable: The reference venv is not usable.
        RuntimeError: The worker failed; the message carries the end of its stderr.
    """
    reference_version()
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    with tempfile.TemporaryDirectory(prefix="meterwatch-bench-") as folder:
        job_path = Path(folder) / "job.json"
        result_path = Path(folder) / "result.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        done = subprocess.run(
            [str(REFERENCE_PYTHON), str(WORKER), str(job_path), str(result_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=folder,  # the reference writes mlflow/model files relative to the cwd
            env=env,
        )
        if done.returncode != 0 or not result_path.exists():
            tail = done.stderr.strip()[-2000:]
            raise RuntimeError(f"reference worker exited {done.returncode}: {tail}")
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result
