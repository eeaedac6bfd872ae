"""Multivariate model statuses (v1.1): what the registry stores and the workflow waits for.

A model goes CREATED → RUNNING → READY | FAILED; READY and FAILED are terminal.
"""

from __future__ import annotations

CREATED, RUNNING, READY, FAILED = "CREATED", "RUNNING", "READY", "FAILED"
#: Every status a model record may carry, in lifecycle order.
MODEL_STATUSES = (CREATED, RUNNING, READY, FAILED)
#: Statuses after which training is over (the monitor stops polling).
TERMINAL_STATUSES = (READY, FAILED)
