"""JSON numbers as the retired service read them: numbers, or numeric strings (``"0.418"``).

The service's JSON reader turned a decimal number written as text into a double, and the
Learn univariate unit sends its values that way. :func:`lenient_number` does the same for
series values (univariate) and variable values (multivariate detect-last), and no more:
booleans, ``null``, hex, ``_`` separators, ``NaN``/``Infinity`` and other text stay errors for
the caller to report.
"""

from __future__ import annotations

import math
import re

#: A decimal number written as text (surrounding blanks allowed).
_NUMERIC_TEXT = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
#: Longest numeric text accepted (a double needs 17 significant digits and an exponent).
MAX_NUMERIC_TEXT = 64


def lenient_number(raw: object) -> float | None:
    """``raw`` as a finite float, or ``None`` when it is not a finite number or numeric text."""
    if isinstance(raw, str):
        if len(raw) > MAX_NUMERIC_TEXT or not _NUMERIC_TEXT.match(raw):
            return None
        number = float(raw)
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    else:
        try:
            number = float(raw)
        except OverflowError:  # an integer too large for a double
            return None
    return number if math.isfinite(number) else None
