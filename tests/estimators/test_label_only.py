"""The CE engine against the brute-force definition of Eq. 6-8 and hand-computed values."""
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from transferability import ce_matrix, ce_matrix_stream, conditional_entropy, hardness


def brute_ce(y, z, bias_correction=False):
    """Eq. 7 literally: -sum_{y,z} P(y,z) log(P(y,z) / P(z)), over rows where both labels exist."""
    pairs = [(a, b) for a, b in zip(y, z) if not _missing(a) and not _missing(b)]
    n = len(pairs)
    joint, marg = {}, {}
    for a, b in pairs:
        joint[(a, b)] = joint.get((a, b), 0) + 1
        marg[b] = marg.get(b, 0) + 1
    h = -sum(c / n * math.log((c / n) / (marg[b] / n)) for (a, b), c in joint.items())
    if bias_correction:
        h += (len(joint) - len(marg)) / (2 * n)
    return h


def _missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def test_paper_toy_examples():
    # Fig. 1 (c): a 1-1 mapping gives 0; (d): each Z class maps to two Y classes equally gives log 2.
    z = [0, 0, 0, 0, 1, 1, 1, 1]
    assert conditional_entropy([1, 1, 1, 1, 0, 0, 0, 0], z) == 0.0
    assert conditional_entropy([0, 1, 0, 1, 2, 3, 2, 3], z) == pytest.approx(math.log(2))
    # A trivial (constant) source gives the entropy of the target: H(Z|C) of Eq. 14.
    y = [0, 1, 2, 3] * 4
    assert conditional_entropy(y, [7] * 16) == pytest.approx(math.log(4))
    assert hardness(y) == pytest.approx(math.log(4))
    assert hardness([5] * 10) == 0.0


def test_hand_computed_value():
    # y|z=0 : {0,0,1} ; y|z=1 : {1}.  H = 3/4 * H(2/3, 1/3) + 1/4 * 0
    h = 0.75 * -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert conditional_entropy([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(h, abs=1e-15)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "strings", "celeba_pm1", "bools"])
def test_conditional_entropy_matches_brute_force(kind):
    rng = np.random.default_rng(1)
    n = 400
    gen = {
        "binary": lambda: rng.integers(0, 2, n),
        "multiclass": lambda: rng.integers(0, 7, n),
        "strings": lambda: rng.choice(["cat", "dog", "emu"], n),
        "celeba_pm1": lambda: rng.choice([-1, 1], n),
        "bools": lambda: rng.random(n) < 0.3,
    }[kind]
    y, z = gen(), gen()
    for bc in (False, True):
        assert conditional_entropy(y, z, bc) == pytest.approx(brute_ce(list(y), list(z), bc), abs=1e-12)


def _mixed_table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "bin": rng.integers(0, 2, n).astype(np.int8),
        "pm1": rng.choice([-1, 1], n),
        "multi": rng.integers(0, 5, n),
        "const": np.ones(n, dtype=int),
        "text": rng.choice(list("abcd"), n),
        "bool": rng.random(n) < 0.4,
        "many": rng.integers(0, 150, n),   # above the dense limit: the sparse path
        "many2": rng.integers(0, 90, n),
    })
    df["bin_missing"] = df["bin"].astype(float)
    df.loc[rng.random(n) < 0.25, "bin_missing"] = np.nan
    df["multi_missing"] = df["multi"].astype(object)
    df.loc[rng.random(n) < 0.15, "multi_missing"] = None
    df["many_missing"] = df["many"].astype(float)
    df.loc[rng.random(n) < 0.1, "many_missing"] = np.nan
    return df


@pytest.mark.parametrize("bias_correction", [False, True])
def test_ce_matrix_equals_pairwise_brute_force(bias_correction):
    df = _mixed_table()
    m = ce_matrix(df, bias_correction=bias_correction)
    assert list(m.index) == list(df.columns) == list(m.columns)
    for t in df.columns:
        for s in df.columns:
            want = brute_ce(df[t].tolist(), df[s].tolist(), bias_correction)
            assert m.loc[t, s] == pytest.approx(want, abs=1e-12), (t, s)


def test_ce_matrix_targets_and_sources_apart():
    df = _mixed_table()
    targets, sources = df[["bin", "text", "bin_missing"]], df[["many", "multi"]].rename(columns={"multi": "bin"})
    m = ce_matrix(targets, sources)
    assert m.shape == (3, 2) and list(m.columns) == ["many", "bin"]
    assert m.loc["bin", "bin"] == pytest.approx(brute_ce(df["bin"].tolist(), df["multi"].tolist()))
    assert m.loc["text", "many"] == pytest.approx(brute_ce(df["text"].tolist(), df["many"].tolist()))


def test_streaming_in_chunks_equals_in_memory():
    df = _mixed_table(n=700, seed=3)
    whole = ce_matrix(df)
    # Chunks see new classes appear late (vocabularies grow) and missing values come and go.
    chunks = [df.iloc[i:i + 130] for i in range(0, len(df), 130)]
    streamed = ce_matrix_stream(chunks)
    np.testing.assert_allclose(streamed.to_numpy(), whole.to_numpy(), atol=1e-12)


def test_identity_scale_source_exact():
    # A 10,177-class source like CelebA identity, with a binary target.
    rng = np.random.default_rng(0)
    n = 60_000
    ident = rng.integers(1, 10_178, n)
    attr = (ident % 3 == 0).astype(np.int8)
    attr[rng.random(n) < 0.05] ^= 1
    m = ce_matrix(pd.DataFrame({"a": attr}), pd.DataFrame({"identity": ident}))
    assert m.loc["a", "identity"] == pytest.approx(conditional_entropy(attr, ident), abs=1e-12)


def test_counts_accumulate_exactly_across_row_blocks(monkeypatch):
    # Exactness at any n rests on adding per-block counts (each block < 2^24 rows, exact in float32)
    # in float64: with tiny blocks, a table repeated 50 times gives exactly the original's estimates.
    import transferability.estimators.label_only as est

    df = _mixed_table(n=200, seed=5)[["bin", "pm1", "multi", "bin_missing"]]
    big = pd.concat([df] * 50, ignore_index=True)
    monkeypatch.setattr(est, "_MAX_BLOCK_ROWS", 37)
    np.testing.assert_allclose(ce_matrix(big).to_numpy(), ce_matrix(df).to_numpy(), atol=1e-12)


def test_float32_limit_respected():
    import transferability.estimators.label_only as est

    assert est._MAX_BLOCK_ROWS < 2 ** 24


def test_all_missing_pair_is_nan():
    df = pd.DataFrame({"a": [1.0, np.nan, 0.0], "b": [np.nan, 1.0, np.nan], "c": [0, 1, 1]})
    m = ce_matrix(df)
    assert np.isnan(m.loc["a", "b"]) and np.isnan(m.loc["b", "a"])
    assert m.loc["a", "c"] == pytest.approx(brute_ce([1.0, 0.0], [0, 1]))


def test_length_mismatch_rejected():
    with pytest.raises(ValueError):
        conditional_entropy([0, 1], [0, 1, 1])


def test_importing_engine_does_not_import_torch():
    code = "import sys, transferability; transferability.ce_matrix; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_benchmark_quick_runs(capsys):
    from transferability.bench.ce import main

    main(quick=True)
    out = capsys.readouterr().out
    assert "ce_matrix" in out and "x" in out.splitlines()[1]
