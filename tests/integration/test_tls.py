"""TLS and SASL settings, against the embedded broker behind a TLS-terminating proxy (docs/broker.md).

The embedded Tansu build speaks neither TLS nor SASL, so TLS is tested through
Debian's ``stunnel4`` in front of it, the broker advertising the proxy's port:
a worker with ``PANTAU_SECURITY_PROTOCOL=SSL`` and ``PANTAU_SSL_CAFILE``
consumes and publishes through TLS; a plaintext client against the TLS port
fails. SASL: the settings reach the clients, and a refused login is a clear
error from ``pantau produce`` / ``pantau tail``. Needs ``stunnel4`` and
``openssl`` (Debian packages); a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from app.broker import EmbeddedBroker, _die_with_parent, free_port
from app.settings import Settings
from tests.conftest import ROOT, WorkerProcess, fresh_settings, produce, read_topic, run
from tests.factories import dumps, result

pytestmark = pytest.mark.integration


def need(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is not installed: `apt-get install -y {binary}` (Debian package {binary})"
    return path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    cert, key = directory / "broker.pem", directory / "broker.key"
    subprocess.run(  # noqa: S603
        [need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class Stunnel:
    """stunnel4 accepting TLS on ``port`` and forwarding plaintext to ``origin_port``."""

    def __init__(self, directory: Path, cert: Path, key: Path, port: int, origin_port: int) -> None:
        self.conf = directory / "stunnel.conf"
        self.conf.write_text(
            f"foreground = yes\npid =\n\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{origin_port}\n"
            f"cert = {cert}\nkey = {key}\n"
        )
        self.port, self.log = port, directory / "stunnel.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stunnel:
        self.proc = subprocess.Popen(  # noqa: S603
            [need("stunnel4"), str(self.conf)], stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        import socket

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"stunnel did not listen on {self.port}: {self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class SecureWorker(WorkerProcess):
    """A worker given the security settings too (app.demo.worker_env passes only the basic ones)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        s = self.settings
        env.update({"PANTAU_SECURITY_PROTOCOL": s.security_protocol, "PANTAU_SSL_CAFILE": s.ssl_cafile})
        return env


def cli(args: list[str], settings: Settings, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update({"PYTHONPATH": str(ROOT), "PANTAU_BROKER_URL": settings.broker_url,
                "PANTAU_SECURITY_PROTOCOL": settings.security_protocol, "PANTAU_SASL_MECHANISM": settings.sasl_mechanism,
                "PANTAU_SASL_USERNAME": settings.sasl_username, "PANTAU_SASL_PASSWORD": settings.sasl_password,
                "PANTAU_SSL_CAFILE": settings.ssl_cafile, "PANTAU_TOPIC_ALERTS": settings.topic_alerts})
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT,  # noqa: S603
                          capture_output=True, timeout=timeout)


def test_worker_through_tls_and_plaintext_refused(tmp_path):
    cert, key = make_certificate(tmp_path)
    tls_port = free_port()
    with EmbeddedBroker(advertised_port=tls_port, log_path=tmp_path / "broker.log") as broker, \
            Stunnel(tmp_path, cert, key, tls_port, broker.port):
        settings = fresh_settings(broker.url, tmp_path, security_protocol="SSL", ssl_cafile=str(cert))
        worker = SecureWorker(settings, tmp_path / "worker.log")
        try:
            worker.start(timeout=120)
            tally = result(votes={"01": 100, "02": 100}, valid=150, event_id="through-tls")
            run(produce(settings, [("results", tally["tps"].encode(), dumps(tally))]))
            alerts = [orjson.loads(r.value) for r in run(read_topic(settings, settings.topic_alerts, until=1))]
            assert any("through-tls" in a["event_ids"] for a in alerts), alerts
            assert worker.metric("pantau_events_total", stream="results", outcome="processed") == 1
        finally:
            worker.stop()

        # (b) a plaintext client on the TLS port: a clear failure, not a hang
        plain = settings.replace(security_protocol="PLAINTEXT", ssl_cafile="")
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaConnectionError

        async def plaintext() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
            try:
                await producer.start()
            finally:
                await producer.stop()

        started = time.monotonic()
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            asyncio.run(plaintext())
        assert time.monotonic() - started < 30
        proc = cli(["tail", "--from-beginning", "--limit", "1"], plain)
        message = proc.stderr.decode()
        assert proc.returncode == 2, message
        assert "PANTAU_SECURITY_PROTOCOL" in message and "TLS" in message, message
        assert "Traceback" not in message
        # and the right settings through the CLI work
        proc = cli(["tail", "--from-beginning", "--limit", "1", "--json"], settings)
        assert proc.returncode == 0, proc.stderr.decode()
        assert "through-tls" in proc.stdout.decode()


def test_sasl_settings_reach_the_clients():
    from app.kafka_io import client_options
    from app.worker import broker_credentials

    s = Settings().replace(broker_url="kafka://kafka-1:9093", security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="SCRAM-SHA-256", sasl_username="pantau", sasl_password="s3cret")
    opts = client_options(s)
    assert opts["security_protocol"] == "SASL_PLAINTEXT"
    assert (opts["sasl_mechanism"], opts["sasl_plain_username"], opts["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "pantau", "s3cret")
    assert "ssl_context" not in opts
    creds = broker_credentials(s)
    assert (creds.mechanism.value, creds.username, creds.password) == ("SCRAM-SHA-256", "pantau", "s3cret")
    assert creds.protocol.value == "SASL_PLAINTEXT"
    assert "s3cret" not in repr(s)  # never logged

    tls = s.replace(security_protocol="SASL_SSL")
    assert client_options(tls)["ssl_context"] is not None
    creds = broker_credentials(tls)
    assert creds.protocol.value == "SASL_SSL" and creds.ssl_context is not None


def test_refused_sasl_login_is_a_clear_error(broker, tmp_path):
    s = fresh_settings(broker.url, tmp_path, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                       sasl_username="pantau", sasl_password="wrong")
    events = tmp_path / "events.jsonl"
    events.write_bytes(dumps(result()) + b"\n")
    for args in (["produce", str(events)], ["tail", "--limit", "1"]):
        proc = cli(args, s)
        message = proc.stderr.decode()
        assert proc.returncode == 2, message
        assert "SASL authentication failed" in message and "PANTAU_SASL_USERNAME" in message, message
        assert "wrong" not in message  # the password is not printed
        assert "Traceback" not in message
