"""The v1.1 univariate parameters' vocabulary and defaults, one copy for the whole app.

Settings, the v1.1 contract, the detection options and the CLI all take these; the engine keeps
its own defaults (it imports no other room) and the contract passes these to it.
"""

from __future__ import annotations

#: ``imputeMode`` values (v1.1), ``auto`` first.
IMPUTE_MODES = ("auto", "previous", "linear", "fixed", "zero", "notFill")
#: ``sensitivity`` when a request or setting gives none (0-99, higher flags more).
DEFAULT_SENSITIVITY = 95
#: ``maxAnomalyRatio`` when a request or setting gives none (upper bound of the flagged share).
DEFAULT_MAX_ANOMALY_RATIO = 0.25
