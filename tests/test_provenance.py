"""Every row and cache entry records the code, libraries and machine that made it."""
import json
import subprocess

import pytest

from transferability import provenance as prov
from transferability.stages.transfer import run_transfer


def test_record_names_code_libraries_and_machine():
    rec = prov.provenance("cpu", threads=2)
    assert set(prov.CODE_KEYS) <= set(rec) and {"device", "hostname", "cpu", "threads"} <= set(rec)
    assert rec["version"] and rec["numpy"] and rec["python"] and (rec["device"], rec["threads"]) == ("cpu", 2)
    head = subprocess.run(["git", "-C", str(prov.CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert rec["commit"] == head.stdout.strip() and isinstance(rec["dirty"], bool)
    else:
        assert rec["commit"] is None


def test_differences_name_only_what_disagrees():
    a = {**prov.provenance(), "commit": "aaa", "threads": 1}
    b = {**a, "commit": "bbb", "numpy": "0.0", "threads": 4}
    assert prov.differences([a, a]) == {}
    # threads differ too, but a thread count is not code: summaries name it on their own line
    assert prov.differences([a, b]) == {"commit": ["aaa", "bbb"], "numpy": sorted([a["numpy"], "0.0"])}


@pytest.mark.slow
def test_a_row_and_its_model_cache_entry_record_provenance(run_config):
    run = run_config(["dataset=digits", "source=even", "trainer=debug", "callbacks=none"])
    out = run_transfer(run)
    records = [json.loads((out / name).read_text())["provenance"] for name in ("source.json", "config.json",
                                                                            "done.json")]
    assert records[0] == records[1] == records[2] and records[0]["torch"] and records[0]["device"] == "cpu"
    meta = json.loads((out / "source.json").read_text())
    assert meta["model_provenance"]["commit"] == records[0]["commit"]
