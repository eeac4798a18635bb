"""Quantile-cut targets: names, prevalences, validation."""
import numpy as np
import pytest

from transferability.data.quantiles import check_quantiles, quantile_tasks, task_name
from transferability.errors import UserError


def test_names_read_as_percent():
    assert [task_name("ink_heavy", q) for q in (0.1, 0.25, 0.5, 0.125)] == [
        "ink_heavy@q10", "ink_heavy@q25", "ink_heavy@q50", "ink_heavy@q12.5"]


def test_cuts_have_the_complementary_prevalence_and_q50_is_the_median_cut():
    v = np.random.default_rng(0).normal(size=1000)
    got = quantile_tasks({"m": v}, (0.1, 0.5, 0.9))
    assert list(got) == ["m@q10", "m@q50", "m@q90"]
    assert [got[k].mean() for k in got] == pytest.approx([0.9, 0.5, 0.1], abs=1e-3)
    np.testing.assert_array_equal(got["m@q50"], v > np.median(v))
    assert all(a.dtype == np.int8 for a in got.values())


@pytest.mark.parametrize("bad", [[], [0.0, 0.5], [0.5, 1], [0.2, 0.2], ["a"], [True]])
def test_bad_quantiles_are_one_clear_line(bad):
    with pytest.raises(UserError, match=r"digits quantiles=.*distinct numbers strictly between 0 and 1"):
        check_quantiles(bad, "digits")


def test_none_keeps_the_default():
    assert check_quantiles(None, "digits") is None
    assert check_quantiles([0.25, 0.75], "x") == (0.25, 0.75)
