"""The population stability index, checked by hand."""

from __future__ import annotations

import math

import pytest

from replay.history.drift import psi


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift():
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    by_hand = (0.4 - 0.25) * math.log(0.4 / 0.25) + (0.1 - 0.25) * math.log(0.1 / 0.25)
    assert psi([0.25] * 4, [0.4, 0.1, 0.25, 0.25]) == pytest.approx(by_hand)
    assert psi([0.5, 0.5], [1.0, 0.0]) > 0.25  # an empty bin stays finite
