"""deploy/kubernetes: every manifest is valid against the Kubernetes schema (offline, the
`kubernetes-validate` package), and the pieces agree with the gateway's own config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == files


def test_configmap_is_a_valid_gateway_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYM_GATEWAY_ADMIN_KEY", "an-admin-key-for-the-test")
    text = by_kind("ConfigMap", "gym-gateway-config")["data"]["gateway.yaml"]
    config = parse_config(text, "deploy/kubernetes/configmap.yaml")
    assert config.cluster is not None
    host = config.cluster.redis_url.split("//")[1].split(":")[0]
    assert by_kind("Service", host)  # the Redis Service the URL names


def test_drain_fits_the_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYM_GATEWAY_ADMIN_KEY", "an-admin-key-for-the-test")
    text = by_kind("ConfigMap", "gym-gateway-config")["data"]["gateway.yaml"]
    grace = parse_config(text, "configmap").server.shutdown_grace_s
    pod = by_kind("Deployment", "gym-gateway")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
