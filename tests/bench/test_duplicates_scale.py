"""bench.duplicates_scale: the bulk load leaves exactly the state the worker's call path leaves."""

import numpy as np
import pytest
from rocksdict import Options, Rdict

from bench import duplicates_scale as ds


def contents(path):
    out = {}
    for store in ds.STORES:
        opts = Options(raw_mode=True)
        db = Rdict(str(path / store), options=opts)
        out[store] = dict(db.items())
        db.close()
    return out


@pytest.mark.parametrize("kw", [
    {},  # the detectors' defaults
    {"max_candidates": 4, "nik_max_registrations": 2},  # small caps, so that they bite
])
def test_bulk_load_equals_record_by_record(tmp_path, kw):
    n = 2000
    events = list(ds.voters(n, seed=5, same_nik_from=0))  # same-NIK re-registrations from the start
    one, bulk = tmp_path / "one", tmp_path / "bulk"
    ds.load_record_by_record(events, str(one), **kw)
    ds.bulk_load(events, str(bulk), **kw)

    a, b = contents(one), contents(bulk)
    for store in ds.STORES:
        assert a[store].keys() == b[store].keys(), store
        assert a[store] == b[store], store
    # The state exercises what it should: full blocks, NIKs held twice, blocks a record left.
    blocks = [len(ds.orjson.loads(v)) for v in a["person_blocks"].values()]
    cap = kw.get("max_candidates", 64)
    nik_regs = [ds.orjson.loads(v)["r"] for v in a["nik_index"].values()]
    assert max(len(r) for r in nik_regs) >= 2
    moved = [r for r in nik_regs if len({x["k"] for x in r}) > 1]  # its earlier record left its "r" block
    assert len(moved) >= 3
    if cap == 4:
        assert blocks.count(cap) > 50 and max(blocks) == cap
    assert np.array_equal(np.load(one / "sketch.npy"), np.load(bulk / "sketch.npy"))
    assert (one / "sketch.npy.total").read_text() == (bulk / "sketch.npy.total").read_text()


def test_warming_the_page_cache_reads_every_file_of_the_state(tmp_path):
    (tmp_path / "person_blocks").mkdir()
    (tmp_path / "person_blocks" / "000001.sst").write_bytes(b"x" * 3_000_000)  # more than one chunk
    (tmp_path / "sketch.npy").write_bytes(b"y" * 10)
    size, seconds = ds.warm_page_cache(str(tmp_path))
    assert size == 3_000_010 and seconds >= 0
