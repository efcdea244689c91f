"""deploy/kubernetes/modelyard.yaml validates against Kubernetes' schemas (kubernetes-validate,
strict: no field Kubernetes does not know) and KubeRay's RayCluster schema (vendored from its
CRD), its pod templates as pods; and it says what modelyard needs: the head serves against its
Ray head with the admin key from the Secret, each worker group joins with its labels, the Service
reaches the head's modelyard port, every volume a container mounts is declared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
VERSION = "1.33.0"


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "modelyard.yaml").read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def pods_of(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]


def test_the_manifests_validate_against_kubernetes_and_kuberay(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == {
        "PersistentVolumeClaim/modelyard-home", "PersistentVolumeClaim/modelyard-models",
        "RayCluster/modelyard", "Service/modelyard",
    }  # fmt: skip
    for obj in objects.values():
        if obj["kind"] != "RayCluster":
            kubernetes_validate.validate(obj, VERSION, strict=True)
    cluster = objects["RayCluster/modelyard"]
    schema = json.loads((DEPLOY / "schemas" / "raycluster-v1.json").read_text())
    jsonschema.validate(cluster, schema)
    for template in pods_of(cluster):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"] | {"name": "p"}}
        kubernetes_validate.validate(pod | {"spec": template["spec"]}, VERSION, strict=True)
    # the checks can fail: a field Kubernetes does not know is refused
    bad = objects["Service/modelyard"] | {"spec": objects["Service/modelyard"]["spec"] | {"colour": "red"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)
    wrong = cluster | {"spec": cluster["spec"] | {"workerGroupSpecs": [{"groupName": "x"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_cluster_is_what_modelyard_needs(objects: dict[str, dict[str, Any]]) -> None:
    cluster = objects["RayCluster/modelyard"]
    assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    (head,) = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    command = " ".join(head["args"])
    assert "modelyard cluster start --port 6379 --no-worker" in command
    assert "exec modelyard serve --host 0.0.0.0" in command
    env = env_of(head)
    assert env["MODELYARD_CLUSTER"] == "127.0.0.1:6379"
    assert env["MODELYARD_ADMIN_KEY"] == {"secretKeyRef": {"name": "modelyard", "key": "admin-key"}}
    assert env["MODELYARD_DATABASE_URL"]["secretKeyRef"]["optional"] is True
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["modelyard"] == 11480
    assert head["readinessProbe"]["httpGet"]["path"] == "/api/health"

    service = objects["Service/modelyard"]
    assert service["spec"]["selector"] == {"ray.io/cluster": "modelyard", "ray.io/node-type": "head"}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["modelyard"]

    pools = set()
    for group in cluster["spec"]["workerGroupSpecs"]:
        (worker,) = group["template"]["spec"]["containers"]
        command = " ".join(worker["args"])
        assert 'exec modelyard worker join "$FQ_RAY_IP:6379"' in command
        pools.add(command.split("--label pool=")[1].split()[0])
    assert pools == {"gpu", "cpu"}

    claims = {n.split("/")[1] for n in objects if n.startswith("PersistentVolumeClaim/")}
    for template in pods_of(cluster):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for container in template["spec"]["containers"]:
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims
