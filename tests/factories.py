"""Real-looking events for tests (NIKs that encode region, birth date and sex)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_ids = itertools.count(1)


def nik_for(district: str, birth: str, sex: str, serial: int) -> str:
    """A NIK: 6-digit district, DDMMYY (day + 40 for women), 4-digit serial."""
    year, month, day = birth.split("-")
    dd = int(day) + (40 if sex == "P" else 0)
    return f"{district}{dd:02d}{month}{year[2:]}{serial:04d}"


def registration(
    name: str = "Siti Rahmawati", birth: str = "1990-05-17", sex: str = "P", serial: int = 1,
    village: str = "3273011001", tps_no: int = 1, event_id: str | None = None, nik: str | None = None,
    action: str = "add", occurred_at: str = "2023-11-01T09:00:00+07:00", **voter: Any,
) -> dict[str, Any]:
    district = village[:6]
    return {
        "schema": "registration.v1",
        "event_id": event_id or f"reg-{next(_ids)}",
        "occurred_at": occurred_at,
        "action": action,
        "source": "coklit",
        "voter": {
            "nik": nik or nik_for(district, birth, sex, serial),
            "nkk": voter.pop("nkk", f"{district}0101230{serial:03d}"),
            "name": name, "birth_place": voter.pop("birth_place", "Bandung"), "birth_date": birth, "sex": sex,
            "marital_status": voter.pop("marital_status", "S"), "address": voter.pop("address", "Jl. Merdeka No. 5"),
            "rt": "001", "rw": "002", "disability": None, **voter,
        },
        "region": {"province": village[:2], "regency": village[:4], "district": district, "village": village},
        "tps": f"{village}{tps_no:03d}",
        "operator_id": "op-1",
    }


def result(
    tps: str = "3273011001001", votes: dict[str, int] | None = None, dpt: int = 280, voters: int | None = None,
    invalid: int = 4, valid: int | None = None, revision: int = 0, event_id: str | None = None,
    submitted_at: str = "2024-02-14T19:00:00+07:00",
) -> dict[str, Any]:
    votes = votes or {"01": 60, "02": 110, "03": 50}
    valid = sum(votes.values()) if valid is None else valid
    voters = valid + invalid if voters is None else voters
    return {
        "schema": "result.v1",
        "event_id": event_id or f"res-{next(_ids)}",
        "submitted_at": submitted_at, "tps": tps,
        "region": {"province": tps[:2], "regency": tps[:4], "district": tps[:6], "village": tps[:10]},
        "contest": "PPWP", "revision": revision,
        "registered": {"dpt": dpt, "dptb": 0, "dpk": 0},
        "voters": voters, "votes": votes, "valid": valid, "invalid": invalid,
        "source": "sirekap", "operator_id": "op-2",
    }


def dumps(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
