"""deploy/: the compose stack, the Dockerfile, Prometheus's config and the Kubernetes manifests.

Docker and a cluster are not available here, so these are structural checks: every file parses,
every file a service mounts or the Dockerfile copies exists, image tags, ports, the Kafka
bootstrap and topic agree with ``deploy/tilewatch.toml``, and the generated files (rules,
Alertmanager config, dashboards, provisioning, ConfigMap) are what ``tilewatch generate``
writes today. ``promtool check config`` validates Prometheus's config with the generated rules.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tilewatch.config import Config, load_config
from tilewatch.exporters.grafana.json_model import DATASOURCE_UID

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"tilewatch:{VERSION}"
CONFIG_IN_CONTAINER = "/etc/tilewatch/tilewatch.toml"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEPLOY / "tilewatch.toml")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(args: list[str], name: str) -> str:
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def _ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    out = {}
    for port in service.get("ports", []):
        host, container = str(port).split("#")[0].strip().rsplit(":", 1)[-2:]
        out[int(container)] = int(host.rsplit(":", 1)[-1])
    return out


# -- compose ----------------------------------------------------------------------------------


def test_compose_has_the_whole_stack(services: dict[str, Any]) -> None:
    assert {"kafka", "tilewatch", "producer", "prometheus", "alertmanager", "grafana"} <= set(
        services
    )
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, service in services.items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, name


def test_kafka_runs_kraft_single_node(services: dict[str, Any], config: Config) -> None:
    env = _env(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    (voter,) = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voter.startswith(f"{node}@")
    assert "ZOOKEEPER" not in " ".join(env)
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1"
    advertised = {
        item.split("://", 1)[0]: item.split("://", 1)[1]
        for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    inter = env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
    # the monitor and the producer reach Kafka where the broker advertises itself
    assert config.kafka.bootstrap_servers == (advertised[inter],)
    protocol_map = dict(
        i.split(":") for i in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = [i.split("://", 1)[0] for i in env["KAFKA_LISTENERS"].split(",")]
    assert set(listeners) <= set(protocol_map)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners


def test_topic_and_bootstrap_agree_with_the_config(
    services: dict[str, Any], config: Config
) -> None:
    (bootstrap,) = config.kafka.bootstrap_servers
    init = _command(services["kafka-init"])
    assert _option(init, "--bootstrap-server") == bootstrap
    created = _option(init, "--topic")
    assert created in config.kafka.topics
    producer = _command(services["producer"])
    assert producer[0] == "produce-demo"
    assert _option(producer, "--bootstrap") == bootstrap
    assert _option(producer, "--topic") == created
    for name in ("tilewatch", "producer"):
        assert "kafka-init" in services[name]["depends_on"]


def test_monitor_image_port_and_config(services: dict[str, Any], config: Config) -> None:
    monitor, producer = services["tilewatch"], services["producer"]
    assert monitor["image"] == producer["image"] == IMAGE
    build = monitor["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == DEPLOY / "Dockerfile"
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert _command(monitor) == ["run", "--config", CONFIG_IN_CONTAINER]
    assert ("./tilewatch.toml", CONFIG_IN_CONTAINER) in _mounts(monitor)
    port = config.exporter.port
    assert config.exporter.host in ("0.0.0.0", "", "::")  # reachable from other containers
    assert port in _ports(monitor)
    assert f":{port}/metrics" in " ".join(monitor["healthcheck"]["test"])


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    mounts = [(name, m) for name, s in services.items() for m in _mounts(s)]
    assert len(mounts) >= 5
    for name, (source, _target) in mounts:
        assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"


def test_prometheus_scrapes_the_monitor_and_loads_the_rules(
    services: dict[str, Any], config: Config
) -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = dict((t, s) for s, t in _mounts(services["prometheus"]))
    assert _option(_command(services["prometheus"]), "--config.file") in mounts
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    hierarchy = getattr(config, "hierarchy", None)
    job = getattr(getattr(hierarchy, "alerts", None), "job", "tilewatch")
    targets = [t for sc in jobs[job]["static_configs"] for t in sc["targets"]]
    assert targets == [f"tilewatch:{config.exporter.port}"]
    (rule_glob,) = prom["rule_files"]
    rules_dir = Path(rule_glob).parent
    source = DEPLOY / mounts[str(rules_dir)]
    matched = sorted(source.glob(Path(rule_glob).name))
    assert DEPLOY / "prometheus/rules/tilewatch-dashboards.rules.yml" in matched
    (am,) = [
        t
        for a in prom["alerting"]["alertmanagers"]
        for s in a["static_configs"]
        for t in s["targets"]
    ]
    host, port = am.split(":")
    assert host == "alertmanager" and int(port) in _ports(services["alertmanager"])
    assert int(port) == 9093


def test_alertmanager_and_grafana_mounts(services: dict[str, Any]) -> None:
    am = services["alertmanager"]
    config_file = _option(_command(am), "--config.file")
    assert dict((t, s) for s, t in _mounts(am))[config_file] == "./alertmanager/alertmanager.yml"
    grafana = dict((t, s) for s, t in _mounts(services["grafana"]))
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/tilewatch.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert grafana[path] == "./grafana/dashboards"
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana/dashboards" / Path(home).relative_to(path)).is_file()
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/tilewatch.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    match = re.fullmatch(r"http://(\w+):(\d+)", source["url"])
    assert match and match[1] == "prometheus"
    assert int(match[2]) in _ports(services["prometheus"])


# -- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_copies_existing_sources_and_runs_the_config() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.12-slim"
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    copied = {s for sources in copies for s in sources}
    assert set(folders.values()) <= copied, "every package folder of pyproject.toml is copied"
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    cmd = next(line for line in lines if line.startswith("CMD"))
    import json

    assert json.loads(entry.split(None, 1)[1]) == ["tilewatch"]
    assert json.loads(cmd.split(None, 1)[1]) == ["run", "--config", CONFIG_IN_CONTAINER]
    exposed = next(line for line in lines if line.startswith("EXPOSE"))
    assert int(exposed.split()[1]) == load_config(DEPLOY / "tilewatch.toml").exporter.port
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".venv" in ignored and not set(ignored) & copied


# -- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) == 1, path
        out[path.name] = docs[0]
    return out


def test_manifests_parse_without_a_namespace(manifests: dict[str, dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in manifests.values()}
    assert {"ConfigMap", "Deployment", "Service", "ServiceMonitor", "Kustomization"} <= kinds
    for name, doc in manifests.items():
        assert "namespace" not in doc.get("metadata", {}), name
    kustomization = manifests["kustomization.yaml"]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert manifests["servicemonitor.yaml"]["apiVersion"] == "monitoring.coreos.com/v1"


def test_deployment_replicas_probes_resources_and_config(
    manifests: dict[str, dict[str, Any]], config: Config
) -> None:
    deployment = manifests["deployment.yaml"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["args"] == ["run", "--config", CONFIG_IN_CONTAINER]
    (port,) = container["ports"]
    assert port["containerPort"] == config.exporter.port
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == config.exporter.port
    assert annotations["prometheus.io/path"] == "/metrics"
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in (port["name"], port["containerPort"]) and get["path"] == "/metrics"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    (mount,) = container["volumeMounts"]
    (volume,) = pod["spec"]["volumes"]
    assert mount["name"] == volume["name"]
    cm = manifests["configmap.yaml"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    (key,) = cm["data"]
    assert f"{mount['mountPath']}/{key}" == CONFIG_IN_CONTAINER
    # all replicas run the checked-in config: one group id, so Kafka splits the partitions
    assert cm["data"][key] == (DEPLOY / "tilewatch.toml").read_text()
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > config.state.checkpoint_interval_seconds


def test_service_and_servicemonitor_select_the_pods(
    manifests: dict[str, dict[str, Any]], config: Config
) -> None:
    pod_labels = manifests["deployment.yaml"]["spec"]["template"]["metadata"]["labels"]
    (container,) = manifests["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    service = manifests["service.yaml"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["port"] == config.exporter.port
    assert svc_port["targetPort"] in (port["name"], port["containerPort"])
    monitor = manifests["servicemonitor.yaml"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == svc_port["name"] and endpoint["path"] == "/metrics"


# -- generated files --------------------------------------------------------------------------


def test_generated_files_are_up_to_date(config: Config) -> None:
    """Run `tilewatch generate --config deploy/tilewatch.toml` after changing the config or
    the generators."""
    from tilewatch.generate import GENERATORS, render, stale

    assert {"dashboards", "kubernetes"} <= set(GENERATORS)
    files = render(config)
    for path in (
        "deploy/grafana/dashboards/tilewatch-overview.json",
        "deploy/grafana/dashboards/tilewatch-heatmaps.json",
        "deploy/grafana/dashboards/tilewatch-cell.json",
        "deploy/grafana/provisioning/datasources/tilewatch.yml",
        "deploy/grafana/provisioning/dashboards/tilewatch.yml",
        "deploy/prometheus/rules/tilewatch-dashboards.rules.yml",
        "deploy/k8s/configmap.yaml",
    ):
        assert path in files
    assert stale(config, ROOT) == [], "stale: run tilewatch generate --config deploy/tilewatch.toml"


@pytest.mark.prometheus
def test_promtool_accepts_the_prometheus_config(promtool_bin: str, tmp_path: Path) -> None:
    """The config with its rule files, as mounted in the container, passes promtool."""
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    rules = tmp_path / "rules"
    shutil.copytree(DEPLOY / "prometheus" / "rules", rules)
    prom["rule_files"] = [str(rules / Path(g).name) for g in prom["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom))
    result = subprocess.run(
        [promtool_bin, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
