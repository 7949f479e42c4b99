"""The deployment files agree with each other and with the services: the compose file runs a
3-node JetStream cluster with every stream replicated three times and several gateway replicas;
every Kubernetes Deployment has its Service and PodDisruptionBudget; every Secret and ConfigMap
key referenced exists; the gateways autoscale on consumer lag; each service connects as its own
NATS user. (Schema validity is `make deploy-check`: docker-compose config and kubernetes-validate.)"""

import pathlib
import re

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
SERVICES = ["ingest", "dispatch", "sms-gateway", "email-gateway", "delivery-status", "feed"]
GATEWAYS = ["sms-gateway", "email-gateway"]


def k8s_documents():
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name in ("kustomization.yaml", "secret.example.yaml"):
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def nats_users():
    return set(re.findall(r"\{ user: ([a-z-]+),", (DEPLOY / "nats/users.conf").read_text()))


def test_compose_runs_a_replicated_cluster_and_every_service():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for node in (1, 2, 3):
        assert compose[f"nats-{node}"]["command"] == ["-c", f"/etc/nats/nats-cluster-{node}.conf"]
        conf = (DEPLOY / f"nats/nats-cluster-{node}.conf").read_text()
        assert all(f"nats-route://nats-{peer}:6222" in conf for peer in (1, 2, 3))
        assert "include ./users.conf" in conf
        assert 'sync_interval: "2m"' in conf, "a replicated node relies on its quorum, with the sync interval stated"
    single = (DEPLOY / "nats/nats-server.conf").read_text()
    assert "sync_interval: always" in single, "a single server must fsync every write"
    users = nats_users()
    for service in SERVICES:
        env = compose[service]["environment"]
        assert env["MSG_NATS__STREAM_REPLICAS"] == "3"
        assert env["MSG_NATS__URL"].split(",") == [f"nats://nats-{n}:4222" for n in (1, 2, 3)]
        assert env["MSG_NATS__USER"] == service and service in users
        assert env["MSG_HEALTH__LISTEN"].endswith(":9090")
    for gateway in GATEWAYS:
        assert compose[gateway]["deploy"]["replicas"] >= 2


def test_every_deployment_has_a_service_a_budget_and_probes():
    docs = k8s_documents()
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    assert sorted(by_kind["Deployment"]) == sorted(SERVICES)
    for name, deployment in by_kind["Deployment"].items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budget = by_kind["PodDisruptionBudget"][name]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
        assert by_kind["Service"][name]["spec"]["selector"].items() <= labels.items()
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        env = {e["name"]: e for e in container["env"]}
        assert env["MSG_NATS__USER"]["value"] == name and name in nats_users()


def test_every_referenced_key_exists():
    config = next(d for d in k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "messaging-config")
    secret = yaml.safe_load((DEPLOY / "k8s/secret.example.yaml").read_text())
    for doc in k8s_documents():
        if doc["kind"] != "Deployment":
            continue
        for env in doc["spec"]["template"]["spec"]["containers"][0]["env"]:
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                assert source["configMapKeyRef"]["key"] in config["data"], env
            if "secretKeyRef" in source:
                assert source["secretKeyRef"]["key"] in secret["stringData"], env


def test_gateways_autoscale_on_consumer_lag():
    hpas = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "HorizontalPodAutoscaler"}
    assert sorted(hpas) == sorted(GATEWAYS)
    rules = next(d for d in k8s_documents() if d["metadata"]["name"] == "prometheus-adapter-messaging")
    adapter = yaml.safe_load(rules["data"]["config.yaml"])["externalRules"][0]
    assert "bus_consumer_pending" in adapter["seriesQuery"]
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        metric = hpa["spec"]["metrics"][0]["external"]["metric"]
        assert metric["name"] == adapter["name"]["as"]
        assert metric["selector"]["matchLabels"]["consumer"] == name


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files


def test_kubernetes_runs_every_service_in_production():
    config = next(d for d in k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "messaging-config")
    assert config["data"]["environment"] == "production"
    for doc in k8s_documents():
        if doc["kind"] != "Deployment":
            continue
        env = {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
        source = env["MSG_ENVIRONMENT"]["valueFrom"]["configMapKeyRef"]
        assert source == {"name": "messaging-config", "key": "environment"}, doc["metadata"]["name"]
        names = set(env)
        assert not {"MSG_LINK_SECRET", "MSG_TWILIO_AUTH_TOKEN"} & names, f"one name per secret: {names}"
