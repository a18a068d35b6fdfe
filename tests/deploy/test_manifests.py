"""The checked-in deployment files: Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, offline), the KEDA alternative against the fields KEDA reads (no schema for
its CRDs here), the BentoCloud config against BentoML's own deployment schema, and all of them
against what the service and its image really are (settings, paths, routes, user, metrics, tables).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path, PurePosixPath
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn
import kubernetes_validate
import psycopg
import pytest
import yaml
from bentoml._internal.cloud.schemas.modelschemas import DeploymentStrategy
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.utils.cattr import bentoml_cattr

from models.bento import BentoFile
from pipelines.postgres.migrations import migrate
from pipelines.settings import Settings
from tests.deploy.project import BENTO_UID, REPO
from tests.deploy.test_grafana import BENTOML

K8S = REPO / "deploy" / "k8s"
KEDA = K8S / "keda"
BENTOCLOUD = REPO / "deploy" / "bentocloud" / "summarizer.yaml"
K8S_VERSION = "1.33.0"
SETTINGS = {f"SUMMARIZER_{name.upper()}" for name in Settings.model_fields}
GPU_IMAGE = BentoFile.load(REPO / "bentofile.gpu.yaml")
# The two BentoML services of service.py; BentoML labels their metrics with these as `runner_name`.
ENTRY, MODEL = "summarizer", "summarizer-model"
# The trigger metadata KEDA reads (keda.sh/docs, scalers/prometheus and scalers/postgresql). KEDA
# ignores any other key, so a misspelt one would silently do nothing.
KEDA_METADATA = {
    "prometheus": (
        {"serverAddress", "query", "threshold"},
        {"activationThreshold", "namespace", "customHeaders", "ignoreNullValues", "queryParameters", "unsafeSsl",
         "timeout", "authModes"},
    ),
    "postgresql": (
        {"query", "targetQueryValue"},
        {"activationTargetQueryValue", "connectionFromEnv", "host", "port", "userName", "dbName", "sslmode",
         "passwordFromEnv"},
    ),
}  # fmt: skip


def load_k8s(folder: Path) -> dict[str, dict[str, Any]]:
    """Every resource of one folder of deploy/k8s (what `kubectl apply -f FOLDER` applies), by kind."""
    resources = [doc for path in sorted(folder.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_kind = {doc["kind"]: doc for doc in resources}
    assert len(by_kind) == len(resources), "one resource of each kind"
    return by_kind


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return load_k8s(K8S)


@pytest.fixture(scope="module")
def keda() -> dict[str, dict[str, Any]]:
    return load_k8s(KEDA)


@pytest.fixture(scope="module")
def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (main,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(main)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """name -> the literal value, or the `valueFrom` of an entry that has one."""
    return {e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container["env"]}


def test_every_manifest_file_is_checked() -> None:
    """The base folder and keda/ are all there is: a file anywhere else would escape these tests."""
    files = [path for path in K8S.rglob("*") if path.is_file()]
    assert {path.parent for path in files} == {K8S, KEDA} and {path.suffix for path in files} == {".yaml"}


def test_the_manifests_pass_the_kubernetes_schemas(k8s: dict[str, dict[str, Any]]) -> None:
    assert set(k8s) == {
        "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "CronJob", "PersistentVolumeClaim",
    }  # fmt: skip
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


def test_no_state_is_on_a_volume_and_the_tokens_are_on_the_secret(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> None:
    """Replicas share state only through PostgreSQL: what the image writes goes to scratch
    (emptyDir), the one claim is the corpus every pod reads, and nothing is ReadWriteOnce."""
    mounts = _mounts(k8s, container)
    env = {**GPU_IMAGE.envs, **_env(container)}
    for name in ("SUMMARIZER_RAG_DIR", "SUMMARIZER_JOBS_DIR", "HF_HOME"):
        assert "emptyDir" in _mounted_from(env[name], mounts), name
    claim = k8s["PersistentVolumeClaim"]
    assert set(claim["spec"]["accessModes"]) <= {"ReadWriteMany", "ReadOnlyMany"}  # never ReadWriteOnce(Pod)
    corpus = _mounted_from(env["SUMMARIZER_JOBS_DATA_DIR"], mounts)
    assert corpus["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"], "readOnly": True}
    on_claims = [m for m in container["volumeMounts"] if "persistentVolumeClaim" in mounts[m["mountPath"]]]
    assert [m["mountPath"] for m in on_claims] == [env["SUMMARIZER_JOBS_DATA_DIR"]] and on_claims[0]["readOnly"] is True
    assert _mounted_from(env["SUMMARIZER_AUTH_TOKENS_FILE"], mounts)["secret"]["secretName"] == "summarizer-tokens"
    assert env["SUMMARIZER_AUTH_REQUIRED"] == "true"


def test_the_database_url_comes_from_a_secret(keda: dict[str, dict[str, Any]], container: dict[str, Any]) -> None:
    ref = _env(container)["SUMMARIZER_DATABASE_URL"]["secretKeyRef"]
    assert set(ref) == {"name", "key"}
    # The file says how to create that Secret, with that key.
    assert f"kubectl create secret generic {ref['name']}" in (K8S / "deployment.yaml").read_text()
    assert f"--from-literal={ref['key']}='postgresql://" in (K8S / "deployment.yaml").read_text()
    # KEDA's operator reads the same Secret; no file holds a URL with a real password.
    (target,) = keda["TriggerAuthentication"]["spec"]["secretTargetRef"]
    assert target == {"parameter": "connection", "name": ref["name"], "key": ref["key"]}
    for path in (*K8S.rglob("*.yaml"), BENTOCLOUD):
        for password in re.findall(r"postgres(?:ql)?://[^:@/\s]+:([^@\s]+)@", path.read_text()):
            assert password == "<password>", path


def test_the_deployment_runs_replicas_and_rolls_without_downtime(k8s: dict[str, dict[str, Any]]) -> None:
    spec = k8s["Deployment"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    rolling = spec["strategy"]["rollingUpdate"]
    # A new pod is ready before an old one goes (or, without a spare GPU, one goes at a time).
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) in {(0, 1), (1, 0)}
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 80  # the 60 s request timeout, then the drain


def test_the_disruption_budget_keeps_a_pod_of_the_deployment(k8s: dict[str, dict[str, Any]]) -> None:
    deployment, budget = k8s["Deployment"], k8s["PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    fewest = min(deployment["spec"]["replicas"], k8s["HorizontalPodAutoscaler"]["spec"]["minReplicas"])
    # Drains can proceed (a budget of 0 blocks them for ever) and one pod always stays.
    if "maxUnavailable" in budget["spec"]:
        assert 1 <= budget["spec"]["maxUnavailable"] < fewest
    else:
        assert 1 <= budget["spec"]["minAvailable"] < fewest


def test_the_hpa_scales_the_deployment(k8s: dict[str, dict[str, Any]]) -> None:
    hpa, deployment = k8s["HorizontalPodAutoscaler"], k8s["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert 2 <= hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100


def _triggers(keda: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    triggers = keda["ScaledObject"]["spec"]["triggers"]
    by_type = {t["type"]: t for t in triggers}
    assert len(by_type) == len(triggers)
    return by_type


def test_the_keda_alternative_has_the_structure_keda_reads(k8s: dict[str, dict[str, Any]], keda: dict[str, dict[str, Any]]) -> None:
    assert set(keda) == {"ScaledObject", "TriggerAuthentication"}
    for resource in keda.values():
        assert resource["apiVersion"] == "keda.sh/v1alpha1"
        assert set(resource) == {"apiVersion", "kind", "metadata", "spec"} and resource["metadata"]["name"]
    scaled, deployment, hpa = keda["ScaledObject"], k8s["Deployment"], k8s["HorizontalPodAutoscaler"]
    assert scaled["spec"]["scaleTargetRef"] == hpa["spec"]["scaleTargetRef"]
    assert scaled["spec"]["minReplicaCount"] == hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"]
    # It takes over hpa.yaml's HPA by its name instead of adding a second one to the Deployment.
    assert scaled["metadata"]["annotations"]["scaledobject.keda.sh/transfer-hpa-ownership"] == "true"
    hpa_config = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa_config["name"] == hpa["metadata"]["name"]
    # Its `behavior` is an HPA's: the HPA schema checks it.
    kubernetes_validate.validate({**hpa, "spec": {**hpa["spec"], "behavior": hpa_config["behavior"]}}, K8S_VERSION, strict=True)
    triggers = _triggers(keda)
    assert set(triggers) == {"prometheus", "postgresql"}
    for kind, trigger in triggers.items():
        assert set(trigger) <= {"type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"}
        assert trigger.get("metricType", "AverageValue") == "AverageValue"  # the total, shared out per replica
        required, optional = KEDA_METADATA[kind]
        assert required <= set(trigger["metadata"]) <= required | optional, kind
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), kind  # KEDA's metadata is a string map
    assert float(triggers["prometheus"]["metadata"]["threshold"]) > 0
    assert float(triggers["postgresql"]["metadata"]["targetQueryValue"]) > 0
    # The database only through the TriggerAuthentication (the Secret), never named in the file.
    assert triggers["postgresql"]["authenticationRef"] == {"name": keda["TriggerAuthentication"]["metadata"]["name"]}
    assert not {"connectionFromEnv", "host", "passwordFromEnv"} & set(triggers["postgresql"]["metadata"])


def test_the_keda_prometheus_query_counts_the_entry_services_requests_in_flight(keda: dict[str, dict[str, Any]]) -> None:
    """BentoML's gauge, for the entry service alone: its `runner_name` label is the BentoML service
    in every Bento, while `service_name` is the Bento's name there, the same for both services."""
    query = _triggers(keda)["prometheus"]["metadata"]["query"]
    assert re.findall(r"\b(?:summarizer|bentoml)_\w+", query) == ["bentoml_service_request_in_progress"]
    assert "bentoml_service_request_in_progress" in BENTOML
    assert f'runner_name="{ENTRY}"' in query and "service_name" not in query
    assert query.startswith("sum(")  # one number for the Deployment; KEDA divides it by the threshold
    assert set(yaml.safe_load(BENTOCLOUD.read_text())["services"]) == {ENTRY, MODEL}


@pytest.mark.postgres
def test_the_keda_postgresql_query_counts_the_waiting_documents_of_live_jobs(keda: dict[str, dict[str, Any]], database_url: str) -> None:
    """The postgresql trigger's query against the job store's real schema (its migrations)."""
    migrate(database_url)
    jobs = ("queued", "running", "cancelled", "completed", "failed")
    documents = {"pending": 3, "running": 2, "done": 4, "failed": 1}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for status in jobs:
            conn.execute(
                "INSERT INTO jobs (id, status, source, total, invalid, created_at) VALUES (%s, %s, 'upload', 10, 0, 0)",
                (f"job-{status}", status),
            )
            lines = [doc for doc, n in documents.items() for _ in range(n)]
            for line, doc_status in enumerate(lines, 1):
                conn.execute(
                    "INSERT INTO job_documents (job_id, doc_id, line, body, status) VALUES (%s, %s, %s, '{}', %s)",
                    (f"job-{status}", f"d{line}", line, doc_status),
                )
        row = conn.execute(_triggers(keda)["postgresql"]["metadata"]["query"]).fetchone()
    assert row == (2 * (3 + 2),)  # pending and claimed documents, of the queued and the running job


def test_the_environment_names_real_settings(container: dict[str, Any]) -> None:
    names = {e["name"] for e in container["env"]}
    names |= {e["name"] for e in yaml.safe_load(BENTOCLOUD.read_text())["envs"]}
    # Also the names in comments: the secrets' keys (`bentoml secret create NAME KEY=...`), notes.
    for path in (*K8S.rglob("*.yaml"), BENTOCLOUD):
        names |= set(re.findall(r"\bSUMMARIZER_\w*[A-Z0-9]\b", path.read_text()))
    ours = {n for n in names if n.startswith("SUMMARIZER_")}
    assert {"SUMMARIZER_DATABASE_URL", "SUMMARIZER_AUTH_TOKENS", "SUMMARIZER_JOBS_LEASE_S"} <= ours
    assert ours <= SETTINGS, ours - SETTINGS


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
    text = BENTOCLOUD.read_text()
    schema = bentocloud_schema(yaml.safe_load(text))
    assert schema.name == "summarizer" and schema.bento.startswith(f"{GPU_IMAGE.name}:")
    assert schema.secrets == ["summarizer-tokens", "summarizer-database"] and schema.access_authorization is False
    for secret, key in zip(schema.secrets, ("SUMMARIZER_AUTH_TOKENS", "SUMMARIZER_DATABASE_URL")):
        assert f"bentoml secret create {secret} {key}=" in text  # the file says how to create each
    entry, model = schema.services[ENTRY], schema.services[MODEL]
    assert entry.instance_type is not None and entry.instance_type.startswith("cpu.")
    assert model.instance_type is not None and model.instance_type.startswith("gpu.")
    for service in (entry, model):
        assert service.scaling is not None
        assert service.scaling.min_replicas is not None and service.scaling.max_replicas is not None
        assert 1 <= service.scaling.min_replicas <= service.scaling.max_replicas


def test_the_bentocloud_services_scale_out_and_roll() -> None:
    """Shared state makes entry replicas interchangeable: two at least, and rollouts that overlap
    old and new replicas instead of BentoCloud's default Recreate (every replica stopped first)."""
    schema = bentocloud_schema(yaml.safe_load(BENTOCLOUD.read_text()))
    entry = schema.services[ENTRY]
    assert entry.scaling is not None and entry.scaling.min_replicas is not None and entry.scaling.min_replicas >= 2
    for service in schema.services.values():
        assert service.deployment_strategy == DeploymentStrategy.RollingUpdate.value
        assert service.scaling is not None and service.scaling.policy is not None
        policy = service.scaling.policy
        assert {policy.scale_up_behavior, policy.scale_down_behavior} <= {"fast", "stable"}  # "disabled" would pin it
        up, down = policy.scale_up_stabilization_window, policy.scale_down_stabilization_window
        assert up is not None and down is not None and 0 <= up < down <= 3600


def test_the_bentocloud_check_refuses_an_unknown_key() -> None:
    config = yaml.safe_load(BENTOCLOUD.read_text())
    config["services"]["summarizer-model"]["instance-type"] = config["services"]["summarizer-model"].pop("instance_type")
    bentoml_cattr.structure(config, CreateDeploymentSchema)  # BentoML alone would drop the key silently
    with pytest.raises(cattrs.ClassValidationError) as raised:
        bentocloud_schema(config)
    assert "instance-type" in " ".join(cattrs.transform_error(raised.value))
