"""Models on disk: a zip of ``config.json`` and one ``.npy`` per learned array (never pickle).

The bytes are identical for identical models (fixed member order, dates and modes).

Version 1 files (written before the sustained judge) still load: they hold two kinds of
evidence and no sustained threshold, and judge as they were trained to (the point judge on the
temporal and cross-sectional evidence only). They are written back as version 1.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from shared.engine.multivariate.config import MultivariateConfig, TrainingDiagnostics, _State
from shared.engine.multivariate.scoring import KINDS
from shared.errors import DatasetError, ModelError

#: Version of the persisted format; :meth:`MultivariateModel.from_bytes` refuses others.
FORMAT_VERSION = 2
#: Kinds of evidence in a version 1 file (no sustained evidence).
_V1_KINDS = 2
#: The learned arrays, one ``.npy`` member each, in this order.
_ARRAYS = (
    "center",
    "scale",
    "quantum",
    "temporal_coef",
    "cross_mean",
    "precision",
    "tail_knots",
    "tail_levels",
    "tail_beta",
    "prior_rms",
    "residual_floor",
    "train_corr",
)

_MODEL_MAX_BYTES = 512 * 1024 * 1024


def _check_shapes(
    arrays: Mapping[str, np.ndarray], width: int, lags: int, kinds: int = KINDS
) -> None:
    expected = {
        "center": (width,),
        "scale": (width,),
        "quantum": (width,),
        "temporal_coef": (1 + width * lags, width),
        "cross_mean": (width,),
        "precision": (width, width),
        "tail_knots": (kinds, width, arrays["tail_levels"].shape[0]),
        "tail_levels": (arrays["tail_levels"].shape[0],),
        "tail_beta": (kinds, width),
        "prior_rms": (kinds, width),
        "residual_floor": (width,),
        "train_corr": (width, width),
    }
    for name, shape in expected.items():
        array = arrays[name]
        if array.shape != shape or array.dtype != np.float64 or not np.isfinite(array).all():
            raise ModelError(
                f"The model's {name}.npy has shape {array.shape} and dtype {array.dtype}; "
                f"expected {shape} float64 with finite values. The file is corrupt.",
                "InvalidModel",
            )


def _write_member(archive: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, payload)


@dataclass(frozen=True)
class Stored:
    """A model's parts as :func:`encode` writes them and :func:`decode` reads them back."""

    config: MultivariateConfig
    variables: tuple[str, ...]
    granularity_seconds: int
    state: _State
    diagnostics: TrainingDiagnostics


def encode(stored: Stored) -> bytes:
    """Serialise a trained model's parts (see the module docstring)."""
    state = stored.state
    legacy = state.tail_knots.shape[0] == _V1_KINDS
    document: dict[str, object] = {
        "format": "meterwatch-multivariate",
        "formatVersion": 1 if legacy else FORMAT_VERSION,
        "config": stored.config.to_dict(),
        "variables": list(stored.variables),
        "granularitySeconds": stored.granularity_seconds,
        "threshold": state.threshold,
        "surpriseCap": state.surprise_cap,
        "diagnostics": asdict(stored.diagnostics),
    }
    if not legacy:
        document["sustainedThreshold"] = state.sustained_threshold
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_member(
            archive, "config.json", json.dumps(document, sort_keys=True, indent=2).encode()
        )
        for name in _ARRAYS:
            array_buffer = io.BytesIO()
            np.save(array_buffer, np.ascontiguousarray(getattr(state, name)), allow_pickle=False)
            _write_member(archive, f"{name}.npy", array_buffer.getvalue())
    return buffer.getvalue()


def decode(data: bytes) -> Stored:
    """Read what :func:`encode` wrote (never unpickles anything).

    Raises:
        ModelError: ``InvalidModel`` when the bytes are not a model of this format, are
            corrupt or inconsistent.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
            if total > _MODEL_MAX_BYTES:
                raise ModelError(
                    f"The model file declares {total:,} bytes; not a meterwatch model.",
                    "InvalidModel",
                )
            document = json.loads(archive.read("config.json").decode("utf-8"))
            arrays = {
                name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
                for name in _ARRAYS
            }
    except ModelError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ModelError(
            f"Not a readable meterwatch multivariate model ({exc}); export it again with "
            "'meterwatch train'.",
            "InvalidModel",
        ) from exc
    if not isinstance(document, dict) or document.get("format") != "meterwatch-multivariate":
        raise ModelError("The file is not a meterwatch multivariate model.", "InvalidModel")
    version = document.get("formatVersion")
    if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
        raise ModelError(
            f"Model format version {document.get('formatVersion')!r} is not supported "
            f"(this meterwatch reads version {FORMAT_VERSION}).",
            "InvalidModel",
        )
    try:
        config = MultivariateConfig.from_dict(document["config"])
        variables = tuple(str(name) for name in document["variables"])
        diagnostics = TrainingDiagnostics(**document["diagnostics"])
        threshold = float(document["threshold"])
        cap = float(document["surpriseCap"])
        legacy = version == 1
        sustained_threshold = math.inf if legacy else float(document["sustainedThreshold"])
        granularity = int(document["granularitySeconds"])
    except (KeyError, TypeError, ValueError, DatasetError) as exc:
        raise ModelError(f"The model's config.json is invalid ({exc}).", "InvalidModel") from exc
    checked = [("threshold", threshold)]
    if not legacy:
        checked.append(("sustainedThreshold", sustained_threshold))
    for name, value in checked:
        if not (math.isfinite(value) and value > 0.0):
            raise ModelError(f"The model's {name} {value!r} is invalid.", "InvalidModel")
    _check_shapes(arrays, len(variables), config.lags, _V1_KINDS if legacy else KINDS)
    state = _State(
        threshold=threshold, surprise_cap=cap, sustained_threshold=sustained_threshold, **arrays
    )
    return Stored(config, variables, granularity, state, diagnostics)
