"""The pipeline: both stages in one process, as replay runs them."""

from __future__ import annotations

from app.pipeline import Pipeline, dict_stores
from app.settings import Settings
from tests.factories import registration


def test_an_update_that_changes_blocks_takes_the_old_copies_out():
    stores = dict_stores()
    pipeline = Pipeline(Settings(), stores)
    old = registration(name="Siti Rahmawati", birth="1990-05-17", sex="P", serial=3)
    corrected = {**registration(name="Siti Rahmawati", birth="1990-06-18", sex="P", nik=old["voter"]["nik"]),
                 "action": "update"}
    pipeline.process_local("registrations", old)
    old_keys = set(pipeline.person_block.blocking_keys(old))
    _findings, routes = pipeline.on_registration(corrected)
    removed = {r.key for r in routes if r.event["action"] == "remove"}
    assert removed and removed <= old_keys
    assert removed == old_keys - set(pipeline.person_block.blocking_keys(corrected))
    for route in routes:
        pipeline.on_route(route.kind, route.key, route.event)
    # a look-alike of the OLD record (old birth date, other NIK) no longer matches it
    lookalike = registration(name="Siti Rahmawati", birth="1990-05-17", sex="P", serial=9, village="3201021002")
    found = pipeline.process_local("registrations", lookalike)
    assert not [f for f in found if f.detector == "duplicate_person" and old["event_id"] in f.event_ids]


def test_a_removal_empties_the_persons_blocks():
    pipeline = Pipeline(Settings(), dict_stores())
    rec = registration(serial=4)
    pipeline.process_local("registrations", rec)
    _f, routes = pipeline.on_registration({**rec, "action": "remove", "event_id": "rm-1"})
    blocks = [r for r in routes if r.kind == "person_block"]
    assert {r.key for r in blocks} == set(pipeline.person_block.blocking_keys(rec))
    assert all(r.event["action"] == "remove" for r in blocks)


def test_process_local_reports_a_pair_found_in_several_blocks_once():
    pipeline = Pipeline(Settings(), dict_stores())
    a = registration(name="Muhammad Ridwan", birth="1988-04-12", sex="L", serial=21, birth_place="Bandung")
    b = registration(name="M. Ridwan", birth="1988-04-12", sex="L", serial=77, village="3201021002",
                     birth_place="Bandung", nkk="3201020202020002", address="Gg. Melati 12")
    pipeline.process_local("registrations", a)
    found = [f for f in pipeline.process_local("registrations", b) if f.detector == "duplicate_person"]
    assert len(found) == 1 and found[0].event_ids[:2] == [b["event_id"], a["event_id"]]


def test_every_store_is_opened_when_the_pipeline_is_built():
    """The worker's stores are Faust tables, which cannot be declared after start-up."""
    opened: list[str] = []
    stores: dict = {}

    def factory(name: str):
        opened.append(name)
        return stores.setdefault(name, {})

    pipeline = Pipeline(Settings(), factory)
    at_start = set(opened)
    rec = registration(serial=5)
    pipeline.process_local("registrations", rec)
    pipeline.process_local("registrations", {**rec, "action": "update", "event_id": "u1"})
    pipeline.on_feedback({"detector": "duplicate_person", "evidence": {"features": {"name_sim": 1.0}}}, True)
    assert set(opened) <= at_start, f"opened late: {set(opened) - at_start}"
