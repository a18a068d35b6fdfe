"""The checked-in deployment files: Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, offline), the BentoCloud config against BentoML's own deployment schema,
and both against what the service and its image really are (settings, paths, routes, user).
"""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn
import kubernetes_validate
import pytest
import yaml
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.utils.cattr import bentoml_cattr

from models.bento import BentoFile
from pipelines.settings import Settings
from tests.deploy.project import BENTO_UID, REPO

K8S = REPO / "deploy" / "k8s"
BENTOCLOUD = REPO / "deploy" / "bentocloud" / "summarizer.yaml"
K8S_VERSION = "1.33.0"
SETTINGS = {f"SUMMARIZER_{name.upper()}" for name in Settings.model_fields}
GPU_IMAGE = BentoFile.load(REPO / "bentofile.gpu.yaml")


def load_k8s() -> dict[str, dict[str, Any]]:
    """Every resource in deploy/k8s, by kind."""
    resources = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_kind = {doc["kind"]: doc for doc in resources}
    assert len(by_kind) == len(resources), "one resource of each kind"
    return by_kind


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return load_k8s()


@pytest.fixture(scope="module")
def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (main,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(main)


def test_the_manifests_pass_the_kubernetes_schemas(k8s: dict[str, dict[str, Any]]) -> None:
    assert set(k8s) == {"Deployment", "Service", "PersistentVolumeClaim", "CronJob"}
    for resource in k8s.values():
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_schema_check_can_fail(k8s: dict[str, dict[str, Any]]) -> None:
    broken = copy.deepcopy(k8s["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_pod_asks_for_a_gpu_and_runs_as_the_images_user(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == BENTO_UID
    assert container["image"].rpartition("/")[2].partition(":")[0] == GPU_IMAGE.name


def test_the_probes_use_the_bentoml_health_routes(container: dict[str, Any]) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 3000}
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/livez", "readiness": "/readyz", "liveness": "/livez",
    }  # fmt: skip
    assert {probe["port"] for probe in probes.values()} == {"http"}


def _mounts(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume it mounts."""
    volumes = {v["name"]: v for v in k8s["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}


def _mounted_from(path: str, mounts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The volume under which `path` lies (the deepest mount that contains it)."""
    holders = [m for m in mounts if PurePosixPath(path).is_relative_to(m)]
    assert holders, f"{path} is on no volume"
    return mounts[max(holders, key=len)]


def test_the_state_is_on_the_claim_and_the_tokens_on_the_secret(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> None:
    mounts = _mounts(k8s, container)
    claim = k8s["PersistentVolumeClaim"]["metadata"]["name"]
    env = {**GPU_IMAGE.envs, **{e["name"]: e["value"] for e in container["env"]}}
    for name in ("SUMMARIZER_RAG_DIR", "SUMMARIZER_JOBS_DIR", "SUMMARIZER_JOBS_DATA_DIR", "HF_HOME"):
        assert _mounted_from(env[name], mounts).get("persistentVolumeClaim") == {"claimName": claim}, name
    assert _mounted_from(env["SUMMARIZER_AUTH_TOKENS_FILE"], mounts)["secret"]["secretName"] == "summarizer-tokens"
    assert env["SUMMARIZER_AUTH_REQUIRED"] == "true"
    assert k8s["Deployment"]["spec"]["strategy"]["type"] == "Recreate"  # one pod holds the volume at a time


def test_the_environment_names_real_settings(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> None:
    names = {e["name"] for e in container["env"]}
    names |= {e["name"] for e in yaml.safe_load(BENTOCLOUD.read_text())["envs"]}
    ours = {n for n in names if n.startswith("SUMMARIZER_")}
    assert ours and ours <= SETTINGS, ours - SETTINGS


def test_the_nightly_cronjob_submits_to_the_service(k8s: dict[str, dict[str, Any]]) -> None:
    service = k8s["Service"]
    (port,) = service["spec"]["ports"]
    assert service["spec"]["selector"] == k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    job = k8s["CronJob"]["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    (submit,) = job["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    script = submit["args"][0]
    assert f"url=http://{service['metadata']['name']}:{port['port']}" in script
    assert '"$url/jobs"' in script and "Authorization: Bearer" in script and "nightly/$day.jsonl" in script
    (volume,) = job["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    (mount,) = submit["volumeMounts"]
    assert volume["secret"]["secretName"] and f"cat {mount['mountPath']}/token" in script


def _strict(converter: cattrs.Converter) -> cattrs.Converter:
    """BentoML's converter, but refusing unknown keys (BentoML's own ignores them: a typo in a
    key would silently do nothing)."""
    strict = converter.copy(forbid_extra_keys=True)
    strict.register_structure_hook_factory(
        lambda cls: hasattr(cls, "__attrs_attrs__"),
        lambda cls: make_dict_structure_fn(cls, strict, _cattrs_forbid_extra_keys=True),
    )
    return strict


def bentocloud_schema(config: dict[str, Any]) -> CreateDeploymentSchema:
    """What `bentoml deploy -f` sends BentoCloud: the file, its `cluster` popped, structured."""
    config = {k: v for k, v in config.items() if k != "cluster"}
    bentoml_cattr.structure(config, CreateDeploymentSchema)  # what bentoml itself accepts
    structured: CreateDeploymentSchema = _strict(bentoml_cattr).structure(config, CreateDeploymentSchema)
    return structured


def test_the_bentocloud_config_matches_bentomls_schema() -> None:
    schema = bentocloud_schema(yaml.safe_load(BENTOCLOUD.read_text()))
    assert schema.name == "summarizer" and schema.bento.startswith(f"{GPU_IMAGE.name}:")
    assert schema.secrets == ["summarizer-tokens"] and schema.access_authorization is False
    entry, model = schema.services["summarizer"], schema.services["summarizer-model"]
    assert entry.instance_type is not None and entry.instance_type.startswith("cpu.")
    assert model.instance_type is not None and model.instance_type.startswith("gpu.")
    for service in (entry, model):
        assert service.scaling is not None
        assert service.scaling.min_replicas is not None and service.scaling.max_replicas is not None
        assert 1 <= service.scaling.min_replicas <= service.scaling.max_replicas


def test_the_bentocloud_check_refuses_an_unknown_key() -> None:
    config = yaml.safe_load(BENTOCLOUD.read_text())
    config["services"]["summarizer-model"]["instance-type"] = config["services"]["summarizer-model"].pop("instance_type")
    bentoml_cattr.structure(config, CreateDeploymentSchema)  # BentoML alone would drop the key silently
    with pytest.raises(cattrs.ClassValidationError) as raised:
        bentocloud_schema(config)
    assert "instance-type" in " ".join(cattrs.transform_error(raised.value))
