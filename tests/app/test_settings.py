"""Settings: every field has a variable, a default, a README line; bad values are clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import DEFAULT_HMAC_SECRET, Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_are_safe():
    s = Settings.from_env({})
    assert s.web_host == "127.0.0.1"
    assert s.env == "development" and s.embedded


def test_production_refuses_the_default_secret():
    with pytest.raises(SettingsError, match="PANTAU_HMAC_SECRET"):
        Settings.from_env({"PANTAU_ENV": "production", "PANTAU_BROKER_URL": "kafka://k:9092"})
    with pytest.raises(SettingsError, match="16 characters"):
        Settings.from_env({"PANTAU_ENV": "production", "PANTAU_HMAC_SECRET": "short"})
    s = Settings.from_env({"PANTAU_ENV": "production", "PANTAU_HMAC_SECRET": "x" * 32})
    assert s.hmac_secret != DEFAULT_HMAC_SECRET


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PANTAU_PARTITIONS": "lots"}, "PANTAU_PARTITIONS"),
        ({"PANTAU_PARTITIONS": "0"}, "PANTAU_PARTITIONS"),
        ({"PANTAU_POLLING_DAY": "14/02/2024"}, "PANTAU_POLLING_DAY"),
        ({"PANTAU_SECURITY_PROTOCOL": "TLS"}, "PANTAU_SECURITY_PROTOCOL"),
        ({"PANTAU_SECURITY_PROTOCOL": "SASL_SSL"}, "PANTAU_SASL_USERNAME"),
        ({"PANTAU_STORE": "redis://"}, "PANTAU_STORE"),
        ({"PANTAU_PARTITONS": "4"}, "unknown setting"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def settings_output(fmt: str) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", "settings", "--format", fmt],
                         capture_output=True, text=True, check=True, cwd=README.parent)
    return out.stdout


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text()
    for var, _default, doc in Settings().documented():
        assert doc, f"{var} has no description in app/settings.py"
        assert var in text, f"{var} is missing from the README's settings table"
    # the table is exactly what `pantau settings --format markdown` prints (regenerate it with that)
    assert settings_output("markdown") in text, "README settings table is stale: pantau settings --format markdown"


def test_rocksdb_budget_must_be_positive():
    with pytest.raises(SettingsError, match="PANTAU_ROCKSDB_MEMTABLE_MB"):
        Settings.from_env({"PANTAU_ROCKSDB_MEMTABLE_MB": "0"})


def test_password_is_not_in_repr():
    s = Settings().replace(sasl_password="hunter2")
    assert "hunter2" not in repr(s)


def test_example_env_file_lists_every_setting():
    example = (README.parent / "config" / "pantau.env.example").read_text()
    for var, _default, _doc in Settings().documented():
        assert f"# {var}=" in example, f"{var} is missing from config/pantau.env.example"
    assert example == settings_output("env"), "stale: pantau settings --format env > config/pantau.env.example"
