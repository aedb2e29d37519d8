"""compose.yaml: parsed and checked (no Docker engine is needed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of every bind mount of a service."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        if source.startswith((".", "/")):
            out.append(((ROOT / source).resolve(), target))
    return out


def test_services():
    assert set(compose()["services"]) == {"kafka", "worker", "prometheus", "alertmanager", "grafana"}


def test_images_pinned_to_a_version():
    for name, service in compose()["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version tag"


def test_bind_mounts_exist_and_config_flags_point_into_them():
    for name, service in compose()["services"].items():
        mounts = bind_mounts(service)
        for host, _ in mounts:
            assert host.exists(), f"{name}: mounts {host}, which does not exist"
        for arg in service.get("command", []) if isinstance(service.get("command"), list) else []:
            if arg.startswith("--config.file="):
                path = arg.split("=", 1)[1]
                hosts = [host / Path(path).relative_to(target) for host, target in mounts
                         if path.startswith(target.rstrip("/") + "/")]
                assert hosts and hosts[0].is_file(), f"{name}: {arg} is not a mounted file"


def test_worker():
    worker = compose()["services"]["worker"]
    assert worker["build"] == "."
    env = worker["environment"]
    assert env["PANTAU_BROKER_URL"] == "kafka://kafka:9092"
    assert env["PANTAU_ENV"] == "production"
    assert env["PANTAU_HMAC_SECRET"].startswith("${PANTAU_HMAC_SECRET:?"), "the secret must come from outside the file"
    assert worker["read_only"] is True
    data = [v for v in worker.get("volumes", []) if v.endswith(":/var/lib/pantau")]
    assert data and worker.get("tmpfs"), "a read-only worker needs its data volume and a tmpfs"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_runs_kraft():
    env = compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "zookeeper" not in COMPOSE.read_text().lower()
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_prometheus_scrapes_the_worker_service():
    prom = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.compose.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    targets = [t for sc in jobs["pantau-worker"]["static_configs"] for t in sc["targets"]]
    assert targets == ["worker:6066"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_provisioning_matches_the_mounts():
    grafana = compose()["services"]["grafana"]
    provider = yaml.safe_load((ROOT / "config/grafana/provisioning/dashboards/pantau.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounted = dict((target, host) for host, target in bind_mounts(grafana))
    assert path in mounted and any(mounted[path].glob("*.json")), f"dashboards path {path} is not mounted"
    assert "/etc/grafana/provisioning" in mounted
    assert grafana["environment"]["PANTAU_PROMETHEUS_URL"] == "http://prometheus:9090"


def test_published_ports_on_loopback_only():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"


def _dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
    return env


def test_worker_environment_is_accepted_by_the_settings():
    """Every PANTAU_* the image and compose set is a real setting with a valid value."""
    from app.settings import Settings

    env = {k: v for k, v in _dockerfile_env().items() if k.startswith("PANTAU_")}
    env.update({k: str(v) for k, v in compose()["services"]["worker"]["environment"].items()})
    assert env["PANTAU_HMAC_SECRET"].startswith("${")  # interpolated by compose from outside
    env["PANTAU_HMAC_SECRET"] = "0123456789abcdef0123456789abcdef"
    settings = Settings.from_env(env)  # unknown names and bad values raise SettingsError
    assert settings.web_host == "0.0.0.0" and str(settings.data_dir).startswith("/var/lib/pantau")
