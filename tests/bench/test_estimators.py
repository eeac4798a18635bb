"""The estimators benchmark runs end to end at its quick size and prints every estimator (a smoke test: the
figures themselves come from `make bench`, never from a timed test)."""
from transferability.bench import estimators


def test_quick_estimators_bench_prints_every_estimator(capsys):
    estimators.main(quick=True)
    out = capsys.readouterr().out
    for name in ("label-only CE", "LEEP, binary", "LEEP, 100-class", "LogME", "H-score", "Ledoit-Wolf", "TransRate",
                 "GBC", "N-LEEP", "1-NN leave-one-out", "5-NN leave-one-out", "all 9 in one call",
                 "one call per target"):
        assert name in out, name
