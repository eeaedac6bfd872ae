"""The error tree: the numeric errors stay ValueErrors, and the API answers each with its status."""

from __future__ import annotations

import numpy as np
import pytest

from shared.api.errors import status_for
from shared.engine.univariate import UnivariateConfig
from shared.errors import (
    ConflictError,
    EngineError,
    EvaluationError,
    MeterwatchError,
    StateError,
)
from shared.evaluation import event_scores


def test_engine_refusals_are_meterwatch_errors_and_value_errors() -> None:
    with pytest.raises(EngineError) as caught:
        UnivariateConfig(sensitivity=100)
    assert isinstance(caught.value, MeterwatchError) and isinstance(caught.value, ValueError)
    assert caught.value.code == "InvalidEngineArgument"
    assert status_for(caught.value) == 500  # the use cases validate input before the engine


def test_scoring_refusals_are_bad_input() -> None:
    with pytest.raises(EvaluationError) as caught:
        event_scores([], np.zeros(2, dtype=bool), tolerance=-1)
    assert isinstance(caught.value, ValueError)
    assert status_for(caught.value) == 400


@pytest.mark.parametrize("error", [StateError("x"), ConflictError("x")])
def test_state_and_conflict_errors_are_internal(error: MeterwatchError) -> None:
    assert status_for(error) == 500
    assert not isinstance(error, ValueError)
