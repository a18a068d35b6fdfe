"""The checked-in deployment files: Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, offline), the KEDA alternative against the fields KEDA reads (no schema for
its CRDs here), the BentoCloud configs against BentoML's own deployment schema, and all of them
against what the service and its image really are (settings, paths, routes, user, metrics, tables).
The split layout (live and job replicas apart, deploy/k8s/split/ and the BentoCloud pair) is
checked against the single Deployment it must otherwise match.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path, PurePosixPath
from typing import Any

import cattrs
import kubernetes_validate
import psycopg
import pytest
import schema as s
import yaml
from bentoml._internal.cloud.schemas.modelschemas import DeploymentStrategy
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.configuration.v2 import _SERVICE_CONFIG
from bentoml._internal.utils.cattr import bentoml_cattr
from cattrs.gen import make_dict_structure_fn

from models.bento import BentoFile
from pipelines.postgres.migrations import migrate
from pipelines.settings import Settings
from tests.deploy.project import BENTO_UID, REPO
from tests.deploy.test_grafana import BENTOML

K8S = REPO / "deploy" / "k8s"
KEDA = K8S / "keda"
SPLIT = K8S / "split"
BENTOCLOUD = REPO / "deploy" / "bentocloud" / "summarizer.yaml"
BENTOCLOUD_LIVE = BENTOCLOUD.with_name("summarizer-live.yaml")
BENTOCLOUD_JOBS = BENTOCLOUD.with_name("summarizer-jobs.yaml")
BENTOCLOUD_ALL = (BENTOCLOUD, BENTOCLOUD_LIVE, BENTOCLOUD_JOBS)
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


def load_split() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource of deploy/k8s/split/, by kind and name (it has two of several kinds)."""
    resources = [doc for path in sorted(SPLIT.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in resources}
    assert len(by_name) == len(resources), "one resource of each kind and name"
    return by_name


@pytest.fixture(scope="module")
def split() -> dict[tuple[str, str], dict[str, Any]]:
    return load_split()


@pytest.fixture(scope="module")
def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (main,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(main)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """name -> the literal value, or the `valueFrom` of an entry that has one."""
    return {e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container["env"]}


def test_every_manifest_file_is_checked() -> None:
    """The base folder, keda/ and split/ are all there is: a file anywhere else would escape these tests."""
    files = [path for path in K8S.rglob("*") if path.is_file()]
    assert {path.parent for path in files} == {K8S, KEDA, SPLIT} and {path.suffix for path in files} == {".yaml"}
    bentocloud = {path for path in BENTOCLOUD.parent.iterdir() if path.is_file()}
    assert bentocloud == set(BENTOCLOUD_ALL)


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
    for path in (*K8S.rglob("*.yaml"), *BENTOCLOUD_ALL):
        for password in re.findall(r"postgres(?:ql)?://[^:@/\s]+:([^@\s]+)@", path.read_text()):
            assert password == "<password>", path


def test_the_deployment_runs_replicas_and_rolls_without_downtime(k8s: dict[str, dict[str, Any]]) -> None:
    spec = k8s["Deployment"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    rolling = spec["strategy"]["rollingUpdate"]
    # A new pod is ready before an old one goes (or, without a spare GPU, one goes at a time).
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) in {(0, 1), (1, 0)}
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 140  # a long document's 120 s deadline, then the drain


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
    for trigger in triggers.values():
        _check_trigger(trigger, keda["TriggerAuthentication"])


def _check_trigger(trigger: dict[str, Any], authentication: dict[str, Any]) -> None:
    """A trigger as KEDA reads it: known keys, its scaler's metadata keys, string values."""
    kind = trigger["type"]
    assert set(trigger) <= {"type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"}
    assert trigger.get("metricType", "AverageValue") == "AverageValue"  # the total, shared out per replica
    required, optional = KEDA_METADATA[kind]
    assert required <= set(trigger["metadata"]) <= required | optional, kind
    assert all(isinstance(v, str) for v in trigger["metadata"].values()), kind  # KEDA's metadata is a string map
    if kind == "prometheus":
        assert float(trigger["metadata"]["threshold"]) > 0
    else:
        assert float(trigger["metadata"]["targetQueryValue"]) > 0
        # The database only through the TriggerAuthentication (the Secret), never named in the file.
        assert trigger["authenticationRef"] == {"name": authentication["metadata"]["name"]}
        assert not {"connectionFromEnv", "host", "passwordFromEnv"} & set(trigger["metadata"])


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
def test_the_keda_postgresql_query_counts_the_waiting_documents_of_live_jobs(
    keda: dict[str, dict[str, Any]], split: dict[tuple[str, str], dict[str, Any]], database_url: str
) -> None:
    """The postgresql triggers' query (KEDA's alternative, and the split's job replicas) against
    the job store's real schema (its migrations)."""
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
        queries = [
            _triggers(keda)["postgresql"]["metadata"]["query"],
            _split_trigger(split, "summarizer-jobs")["metadata"]["query"],
        ]
        rows = [conn.execute(query).fetchone() for query in queries]
    assert rows == [(2 * (3 + 2),)] * 2  # pending and claimed documents, of the queued and the running job


def test_the_environment_names_real_settings(
    container: dict[str, Any], split: dict[tuple[str, str], dict[str, Any]]
) -> None:
    names = {e["name"] for e in container["env"]}
    names |= {e["name"] for side in ("live", "jobs") for e in _split_container(split, side)["env"]}
    names |= {e["name"] for path in BENTOCLOUD_ALL for e in yaml.safe_load(path.read_text())["envs"]}
    # Also the names in comments: the secrets' keys (`bentoml secret create NAME KEY=...`), notes.
    for path in (*K8S.rglob("*.yaml"), *BENTOCLOUD_ALL):
        names |= set(re.findall(r"\bSUMMARIZER_\w*[A-Z0-9]\b", path.read_text()))
    ours = {n for n in names if n.startswith("SUMMARIZER_")}
    assert {"SUMMARIZER_DATABASE_URL", "SUMMARIZER_AUTH_TOKENS", "SUMMARIZER_JOBS_LEASE_S", "SUMMARIZER_ROLE"} <= ours
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


# The split: live and job replicas apart (deploy/k8s/split/, the BentoCloud pair).

ROLES = set(typing.get_args(Settings.model_fields["role"].annotation))
SIDES = {"live": "summarizer-live", "jobs": "summarizer-jobs"}  # SUMMARIZER_ROLE -> its Deployment


def _split_container(split: dict[tuple[str, str], dict[str, Any]], side: str) -> dict[str, Any]:
    (main,) = split["Deployment", SIDES[side]]["spec"]["template"]["spec"]["containers"]
    return dict(main)


def _split_trigger(split: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    (trigger,) = split["ScaledObject", name]["spec"]["triggers"]
    return dict(trigger)


def _selects(selector: dict[str, str], resource: dict[str, Any]) -> bool:
    """Whether a label selector picks the pods of a Deployment."""
    labels: dict[str, str] = resource["spec"]["template"]["metadata"]["labels"]
    return selector.items() <= labels.items()


def test_the_split_manifests_pass_the_kubernetes_schemas(split: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(split) == {
        ("Deployment", "summarizer-live"), ("Deployment", "summarizer-jobs"),
        ("Service", "summarizer"), ("Service", "summarizer-jobs"),
        ("PodDisruptionBudget", "summarizer-live"), ("PodDisruptionBudget", "summarizer-jobs"),
        ("ScaledObject", "summarizer-live"), ("ScaledObject", "summarizer-jobs"),
        ("TriggerAuthentication", "summarizer-database"),
    }  # fmt: skip
    for resource in split.values():
        if not resource["apiVersion"].startswith("keda.sh/"):
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_each_side_sets_its_role_and_the_shared_database(
    split: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]
) -> None:
    """SUMMARIZER_ROLE=live on the live pods, =jobs on the job pods: real values of the setting,
    which refuses a split role without the database, so both take its URL from the one Secret."""
    assert set(SIDES) <= ROLES and "all" in ROLES
    for side in SIDES:
        env = _env(_split_container(split, side))
        assert env["SUMMARIZER_ROLE"] == side
        assert env["SUMMARIZER_DATABASE_URL"] == _env(container)["SUMMARIZER_DATABASE_URL"]
    assert "SUMMARIZER_ROLE" not in _env(container)  # the single Deployment keeps the default, `all`


def test_the_split_pods_are_the_single_deployments_but_for_the_role(
    split: dict[tuple[str, str], dict[str, Any]], k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    """Image, probes, resources, user, grace period and tokens as in deployment.yaml: the split
    changes who does what, not how a pod runs. Job pods leave out the corpus (a submission by path
    is read by the live pod that accepts it)."""
    single_pod = k8s["Deployment"]["spec"]["template"]["spec"]
    base_env = _env(container)
    for side in SIDES:
        deployment = split["Deployment", SIDES[side]]
        pod, main = deployment["spec"]["template"]["spec"], _split_container(split, side)
        for key in ("securityContext", "terminationGracePeriodSeconds", "tolerations"):
            assert pod[key] == single_pod[key], (side, key)
        for key in ("image", "ports", "resources", "startupProbe", "readinessProbe", "livenessProbe"):
            assert main[key] == container[key], (side, key)
        env = {name: value for name, value in _env(main).items() if name != "SUMMARIZER_ROLE"}
        without_corpus = {name: value for name, value in base_env.items() if name != "SUMMARIZER_JOBS_DATA_DIR"}
        assert env == (base_env if side == "live" else without_corpus), side
        assert deployment["spec"]["minReadySeconds"] == k8s["Deployment"]["spec"]["minReadySeconds"]
        # The pods spread among their own side, not among every summarizer pod.
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    live_mounts = _mounts({"Deployment": split["Deployment", "summarizer-live"]}, _split_container(split, "live"))
    assert live_mounts == _mounts(k8s, container)
    jobs_mounts = _mounts({"Deployment": split["Deployment", "summarizer-jobs"]}, _split_container(split, "jobs"))
    assert jobs_mounts == {path: volume for path, volume in live_mounts.items() if path != base_env["SUMMARIZER_JOBS_DATA_DIR"]}
    env = {**GPU_IMAGE.envs, **base_env}
    for name in ("SUMMARIZER_RAG_DIR", "SUMMARIZER_JOBS_DIR", "HF_HOME"):
        assert "emptyDir" in _mounted_from(env[name], jobs_mounts), name


def test_the_service_reaches_live_pods_only(
    split: dict[tuple[str, str], dict[str, Any]], k8s: dict[str, dict[str, Any]]
) -> None:
    live, jobs = split["Deployment", "summarizer-live"], split["Deployment", "summarizer-jobs"]
    service = split["Service", "summarizer"]
    # The name callers and the CronJob use (http://summarizer:3000) and the same port.
    assert service["metadata"]["name"] == k8s["Service"]["metadata"]["name"]
    assert service["spec"]["ports"] == k8s["Service"]["spec"]["ports"]
    assert _selects(service["spec"]["selector"], live) and not _selects(service["spec"]["selector"], jobs)
    # The job pods' Service carries no traffic: headless, for finding them to scrape /metrics.
    metrics = split["Service", "summarizer-jobs"]
    assert metrics["spec"]["clusterIP"] == "None"
    assert _selects(metrics["spec"]["selector"], jobs) and not _selects(metrics["spec"]["selector"], live)
    # Neither Deployment's selector picks the other's pods.
    assert not _selects(live["spec"]["selector"]["matchLabels"], jobs)
    assert not _selects(jobs["spec"]["selector"]["matchLabels"], live)


def test_the_split_rolls_and_drains_each_side_apart(split: dict[tuple[str, str], dict[str, Any]]) -> None:
    live, jobs = split["Deployment", "summarizer-live"], split["Deployment", "summarizer-jobs"]
    scaled_live = split["ScaledObject", "summarizer-live"]["spec"]
    assert 2 <= live["spec"]["replicas"] == scaled_live["minReplicaCount"] <= scaled_live["maxReplicaCount"]
    rolling = live["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) in {(0, 1), (1, 0)}
    # KEDA owns the job pods' count (down to zero): a count in the file would reset it on each apply.
    assert "replicas" not in jobs["spec"]
    assert jobs["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    for deployment in (live, jobs):
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 140
        budget = split["PodDisruptionBudget", deployment["metadata"]["name"]]
        assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert budget["spec"]["maxUnavailable"] == 1  # drains proceed, one pod at a time
    assert split["PodDisruptionBudget", "summarizer-live"]["spec"]["maxUnavailable"] < live["spec"]["replicas"]


def test_each_side_scales_on_its_own_work(
    split: dict[tuple[str, str], dict[str, Any]], k8s: dict[str, dict[str, Any]], keda: dict[str, dict[str, Any]]
) -> None:
    """Live pods on requests in flight, job pods on job documents waiting: each the trigger of
    keda/ that the other tests check against BentoML's metrics and the job store's schema."""
    authentication = split["TriggerAuthentication", "summarizer-database"]
    assert authentication == keda["TriggerAuthentication"]  # the same resource: applying both is harmless
    for side, name in SIDES.items():
        scaled = split["ScaledObject", name]
        assert scaled["apiVersion"] == "keda.sh/v1alpha1" and set(scaled) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(scaled["spec"]) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                                       "cooldownPeriod", "advanced", "triggers"}  # fmt: skip
        assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = k8s["HorizontalPodAutoscaler"]
        kubernetes_validate.validate({**hpa, "spec": {**hpa["spec"], "behavior": behavior}}, K8S_VERSION, strict=True)
        _check_trigger(_split_trigger(split, name), authentication)
    live, jobs = _split_trigger(split, "summarizer-live"), _split_trigger(split, "summarizer-jobs")
    assert live["type"] == "prometheus" and live["metadata"] == _triggers(keda)["prometheus"]["metadata"]
    assert "bentoml_service_request_in_progress" in live["metadata"]["query"]
    assert jobs["type"] == "postgresql"
    assert jobs["metadata"]["query"] == _triggers(keda)["postgresql"]["metadata"]["query"]
    assert "'pending'" in jobs["metadata"]["query"] and "job_documents" in jobs["metadata"]["query"]
    # Job pods go to zero while nothing waits, and come back for the first document.
    scaled_jobs = split["ScaledObject", "summarizer-jobs"]["spec"]
    assert scaled_jobs["minReplicaCount"] == 0 and jobs["metadata"]["activationTargetQueryValue"] == "0"
    assert scaled_jobs["cooldownPeriod"] >= 300
    # Live pods never to zero: a request would wait for a model to load.
    assert split["ScaledObject", "summarizer-live"]["spec"]["minReplicaCount"] >= 2


def test_the_bentocloud_split_is_two_deployments_of_the_same_bento() -> None:
    single = bentocloud_schema(yaml.safe_load(BENTOCLOUD.read_text()))
    live = bentocloud_schema(yaml.safe_load(BENTOCLOUD_LIVE.read_text()))
    jobs = bentocloud_schema(yaml.safe_load(BENTOCLOUD_JOBS.read_text()))
    # The live half keeps the single deployment's name, so turning it live keeps the endpoint.
    assert live.name == single.name and jobs.name not in {None, single.name}
    for half, role in ((live, "live"), (jobs, "jobs")):
        assert half.bento == single.bento and half.secrets == single.secrets  # the database among them
        assert half.access_authorization is False
        envs = {env.name: env.value for env in half.envs or []}
        assert envs == {**{env.name: env.value for env in single.envs or []}, "SUMMARIZER_ROLE": role}
        assert set(half.services) == {ENTRY, MODEL}
        for name, service in half.services.items():
            assert service.instance_type == single.services[name].instance_type
            assert service.deployment_strategy == DeploymentStrategy.RollingUpdate.value
            assert service.scaling is not None and service.scaling.policy is not None
            assert service.scaling.min_replicas is not None and service.scaling.max_replicas is not None
            # Never to zero, either half: BentoCloud wakes a deployment on requests, and the job
            # half gets none.
            assert 1 <= service.scaling.min_replicas <= service.scaling.max_replicas
    entry = live.services[ENTRY]
    assert entry.scaling is not None and entry.scaling.min_replicas is not None and entry.scaling.min_replicas >= 2
    assert "bentoml deployment apply -f deploy/bentocloud/summarizer-live.yaml" in BENTOCLOUD_LIVE.read_text()
    assert "bentoml deploy -f deploy/bentocloud/summarizer-jobs.yaml" in BENTOCLOUD_LIVE.read_text()


def test_the_bentocloud_live_half_scales_on_requests_in_flight(keda: dict[str, dict[str, Any]]) -> None:
    """The entry service's `traffic.concurrency`, BentoCloud's scaling target, set for the live
    half only: the same 32 a replica as KEDA's trigger, and a value BentoML's own service schema
    takes (the override is merged over service.py's `traffic`, which has the timeout)."""
    live = bentocloud_schema(yaml.safe_load(BENTOCLOUD_LIVE.read_text()))
    overrides = live.services[ENTRY].config_overrides
    assert overrides == {"traffic": {"concurrency": int(_triggers(keda)["prometheus"]["metadata"]["threshold"])}}
    s.Schema(_SERVICE_CONFIG).validate({"traffic": {"timeout": 65, **overrides["traffic"]}})
    with pytest.raises(s.SchemaError):  # the check can fail
        s.Schema(_SERVICE_CONFIG).validate({"traffic": {"timeout": 65, "concurency": 32}})
    assert int(overrides["traffic"]["concurrency"]) * 2 == Settings.model_fields["max_concurrency"].default
    jobs = bentocloud_schema(yaml.safe_load(BENTOCLOUD_JOBS.read_text()))
    assert all(not service.config_overrides for service in jobs.services.values())
