"""core.validate: one set of parameter checks for core, blocks and the command line.

Every refusal is a ValueError whose message starts with the parameter's name
and quotes the bad value; accepted values come back in their canonical type.
"""
import math

import numpy as np
import pytest

from gnuradio.e2e.core import validate

BAD_SIZES = [-1, -16, 0, 16.0, 7.5, True, False, float("nan"), float("inf"), "16", "abc", None, [16]]


@pytest.mark.parametrize("M, n", [(2, 1), (16, 7), (1024, 100), (np.int64(16), np.int32(7)), (3, 5)])
def test_sizes_accepts(M, n):
    got = validate.sizes(M, n)
    assert got == (int(M), int(n))
    assert all(type(v) is int for v in got)


@pytest.mark.parametrize("bad", BAD_SIZES + [1])  # M needs >= 2
def test_sizes_rejects_M(bad):
    with pytest.raises(ValueError, match=r"^M must") as e:
        validate.sizes(bad, 7)
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize("bad", BAD_SIZES)
def test_sizes_rejects_n(bad):
    with pytest.raises(ValueError, match=r"^n must") as e:
        validate.sizes(16, bad)
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize("value", [-10, -3.5, 0, 0.0, 4, 7.25, np.float32(3.0), np.int64(2)])
def test_db_accepts(value):
    got = validate.db("ebn0_db", value)
    assert type(got) is float and got == float(value)


@pytest.mark.parametrize("bad", [float("nan"), np.nan, float("inf"), -float("inf"), True, False,
                                 "abc", "", "3.0", None, [3.0], {}, object()])
@pytest.mark.parametrize("name", ["ebn0_db", "snr_db"])
def test_db_rejects(bad, name):
    with pytest.raises(ValueError, match=rf"^{name} must") as e:
        validate.db(name, bad)
    assert repr(bad) in str(e.value)


def test_db_or_range():
    assert validate.db_or_range("ebn0_db", 4) == 4.0
    assert validate.db_or_range("ebn0_db", [2, 8]) == (2.0, 8.0)
    assert validate.db_or_range("ebn0_db", (3.0, 3.0)) == (3.0, 3.0)
    for bad in ((8, 2), (1, 2, 3), (0, float("inf")), (3.0, "x"), "abc"):
        with pytest.raises(ValueError, match=r"^ebn0_db"):
            validate.db_or_range("ebn0_db", bad)


def test_mode():
    assert validate.mode("complex") == "complex"
    assert validate.mode("real") == "real"
    for bad in ("Complex", "imag", "", None, 1):
        with pytest.raises(ValueError, match=r"^mode must"):
            validate.mode(bad)


@pytest.mark.parametrize("value, low, high", [(0, 0, None), (5, 1, 5), (np.int16(3), None, 3), (-4, None, None)])
def test_integer_accepts(value, low, high):
    got = validate.integer("k", value, low, high)
    assert type(got) is int and got == int(value)


@pytest.mark.parametrize("value, low, high, bound", [
    (-1, 0, None, ">= 0"), (6, 1, 5, "in [1, 5]"), (4, None, 3, "<= 3"),
    (2.0, None, None, "an integer"), (True, 0, None, "an integer"), ("3", 0, None, "an integer")])
def test_integer_rejects_and_states_the_bound(value, low, high, bound):
    with pytest.raises(ValueError, match=r"^k must be an integer") as e:
        validate.integer("k", value, low, high)
    assert bound in str(e.value) and repr(value) in str(e.value)


def test_real_bounds_open_and_closed():
    assert validate.real("lr", 1e-3, 0, low_open=True) == 1e-3
    assert validate.real("p", 1, 0, 1) == 1.0 and type(validate.real("p", 1, 0, 1)) is float
    for value, kwargs, interval in [(0, dict(low=0, low_open=True), "(0, inf)"),
                                    (1, dict(low=0, high=1, high_open=True), "[0, 1)"),
                                    (-0.5, dict(low=0, high=1), "[0, 1]"),
                                    (math.nan, {}, "(-inf, inf)"), (True, {}, "(-inf, inf)"),
                                    ("0.1", dict(low=0), "[0, inf)")]:
        with pytest.raises(ValueError, match=r"^x must be a finite number") as e:
            validate.real("x", value, **kwargs)
        assert interval in str(e.value), str(e.value)


def test_optional_real_choice_boolean_widths_path():
    assert validate.optional_real("snr", None) is None and validate.optional_real("snr", 3) == 3.0
    with pytest.raises(ValueError, match=r"^snr"):
        validate.optional_real("snr", "6")
    assert validate.choice("baseline", "mean", ("none", "mean")) == "mean"
    with pytest.raises(ValueError, match=r"^baseline must be one of \('none', 'mean'\), got 'median'"):
        validate.choice("baseline", "median", ("none", "mean"))
    assert validate.boolean("blocking", np.bool_(True)) is True
    for bad in (1, "True", None):
        with pytest.raises(ValueError, match=r"^blocking must be True or False"):
            validate.boolean("blocking", bad)
    assert validate.widths("hidden", [64, np.int64(32)]) == (64, 32)
    for bad in ([], [0], [16, -2], "64", 64, [1.5], [True]):
        with pytest.raises(ValueError, match=r"^hidden must be a list of positive integers"):
            validate.widths("hidden", bad)
    assert validate.path("checkpoint_out", "") == ""
    for bad, kwargs in ((3, {}), (None, {}), ("", dict(allow_empty=False))):
        with pytest.raises(ValueError, match=r"^checkpoint_out must"):
            validate.path("checkpoint_out", bad, **kwargs)
