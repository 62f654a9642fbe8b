"""The deployment files, checked as far as this machine can without a Docker engine or a cluster.

- Kubernetes manifests: each against the API's own schema (kubernetes-validate ships
  them, strict: unknown fields fail) for Kubernetes 1.30 and 1.37, and against each
  other (selectors, named ports, claims, the ConfigMap, the HPA's target, the probes).
- docker-compose.yml and the GitHub workflow: against the Compose specification's and
  GitHub's schemas that check-jsonschema ships, and against the repository's files.
- Dockerfile: its stages, user, health check and every file it copies.

Not checked here: building the image, running Compose, applying the manifests.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        document
        for resource in kustomization["resources"]
        for document in yaml.safe_load_all((K8S / resource).read_text())
    ]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of ``kind`` (named ``name``; the API's Deployment by default)."""
    if name is None and kind == "Deployment":
        name = "quantserve-api"
    (found,) = [
        m
        for m in _manifests()
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    return found


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    kinds = sorted(m["kind"] for m in _manifests())
    assert kinds == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PersistentVolumeClaim",
            "PersistentVolumeClaim",
            "PersistentVolumeClaim",
            "Service",
        ]
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version: str) -> None:
    for manifest in _manifests():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = _one("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_deployment_probes_scrape_annotations_and_user() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == ports["http"] == 8000
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert container["command"] == ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/app/models"]["readOnly"] is True
    assert "/tmp" in mounts  # the multiprocess folder, on a read-only root filesystem


def test_service_hpa_claims_and_config_refer_to_what_exists() -> None:
    deployment, service, hpa = _one("Deployment"), _one("Service"), _one("HorizontalPodAutoscaler")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port_names = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2

    claims = {m["metadata"]["name"] for m in _manifests() if m["kind"] == "PersistentVolumeClaim"}
    config = _one("ConfigMap")
    cronjob_pod = _one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    # The API mounts every claim; the pipeline only the model store and the data.
    pipeline_claims = {"quantserve-models", "quantserve-data"}
    for pod_spec, expected in ((pod["spec"], claims), (cronjob_pod["spec"], pipeline_claims)):
        used = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod_spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert used == expected
        for container in pod_spec["containers"]:
            assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]


def test_the_cronjob_retrains_only_when_due_with_the_data_read_only() -> None:
    cronjob = _one("CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["quantserve", "retrain", "--if-due"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/app/data"]["readOnly"] is True
    assert mounts["/app/models"].get("readOnly", False) is False  # new versions, the registry


def test_the_stream_is_one_writer_of_the_data_volume() -> None:
    stream = _one("Deployment", "quantserve-stream")
    assert stream["spec"]["replicas"] == 1
    assert stream["spec"]["strategy"]["type"] == "Recreate"  # never two writers at once
    (container,) = stream["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["quantserve", "stream"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/app/data"].get("readOnly", False) is False
    assert stream["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_matches_the_compose_specification(tmp_path: Path) -> None:
    result = _check_jsonschema("vendor.compose-spec", REPO / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((REPO / "docker-compose.yml").read_text().replace("ports:", "portz:", 1))
    assert _check_jsonschema("vendor.compose-spec", broken).returncode != 0


def test_compose_runs_the_pipeline_once_then_the_api_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"pipeline", "stream", "api", "prometheus", "grafana"}
    assert services["stream"]["command"] == ["quantserve", "stream"]
    assert "data:/app/data" in services["stream"]["volumes"]  # the one writer of data/
    assert services["pipeline"]["restart"] == "no"
    assert services["pipeline"]["command"][:2] == ["quantserve", "pipeline"]
    assert services["api"]["depends_on"]["pipeline"] == {
        "condition": "service_completed_successfully"
    }
    assert services["api"]["command"] == ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image  # pinned, not latest
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).is_dir(), source
    scrape = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "quantserve"]
    assert job["static_configs"][0]["targets"] == ["api:8000"]


def test_the_workflow_runs_the_same_steps_as_the_ci_script() -> None:
    workflow = REPO / ".github" / "workflows" / "ci.yml"
    result = _check_jsonschema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    script = (REPO / ".ci" / "run").read_text()
    ci_steps = re.findall(r"^make \S+$", script, flags=re.MULTILINE)
    assert ci_steps == ["make lint", "make security", "make test"]
    steps = yaml.safe_load(workflow.read_text())["jobs"]["test"]["steps"]
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert [r for r in runs if r.startswith("make ")] == ci_steps


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches decides; ``!`` patterns re-include."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negated
    return ignored


def test_the_dockerfile_is_multi_stage_non_root_with_java_and_a_health_check() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = re.sub(r"\\\n", " ", dockerfile)
    stages = re.findall(r"^FROM \S+ AS (\w+)$", instructions, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = instructions.split("AS runtime", 1)[1]
    assert "openjdk-17-jre-headless" in runtime
    assert "--no-install-recommends" in runtime
    (user,) = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert not user.startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*/healthz", runtime, flags=re.MULTILINE)
    assert 'CMD ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]' in runtime
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", instructions, flags=re.MULTILINE)
    sources = [source for line in copies for source in line.split()]
    assert "deploy/gunicorn.conf.py" in sources
    # Every package the wheel is built from is in the image (pip install . in the build).
    packaged = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    assert {p.rstrip("*") for p in packaged} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _dockerignored(source, ignored), source
