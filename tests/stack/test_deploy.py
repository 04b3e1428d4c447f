"""deploy/: what can be checked without a cluster, Helm or a Docker daemon (none is on this
machine): every manifest parses, matches the Kubernetes OpenAPI schema (kubernetes-validate's
copies) and is consistent (selectors, the shared volume, settings that exist), the Helm values
name a code location and run coordinator that import, and the Dockerfile's pip steps are the
Makefile's (what CI installs)."""

from __future__ import annotations

import importlib
import re

import kubernetes_validate
import pytest
import yaml

from sopilot_pipelines.settings import Settings, _groups
from tests.helpers import ROOT

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = ["api.yaml", "workers.yaml", "broker.yaml", "data-volume.yaml", "config.yaml", "secret.example.yaml"]


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _settings_variables() -> set[str]:
    return {f"SOPILOT_{n.upper()}" for _, model in _groups() for n in model.model_fields}


def test_every_manifest_parses_with_kind_and_name():
    kinds = {}
    for name in MANIFESTS:
        for d in _docs(name):
            assert d.get("apiVersion") and d.get("kind") and d["metadata"]["name"], (name, d)
            kinds[(d["kind"], d["metadata"]["name"])] = name
    assert {
        ("Deployment", "sopilot-api"),
        ("Service", "sopilot-api"),
        ("Deployment", "sopilot-worker"),
        ("PersistentVolumeClaim", "sopilot-data"),
        ("ConfigMap", "sopilot-config"),
        ("Secret", "sopilot-env"),
        ("StatefulSet", "sopilot-rabbitmq"),
        ("Secret", "sopilot-rabbitmq"),
    } <= set(kinds)
    # every Secret or ConfigMap a workload refers to is one of these
    refs = set()
    for name in ("api.yaml", "workers.yaml", "broker.yaml"):
        text = (K8S / name).read_text()
        refs |= {
            ("Secret", n)
            for n in re.findall(r"secretKeyRef: \{name: ([\w-]+)", text)
            + re.findall(r"secretRef: \{name: ([\w-]+)", text)
        }
        refs |= {("ConfigMap", n) for n in re.findall(r"configMapRef: \{name: ([\w-]+)", text)}
    refs.discard(("Secret", "dagster-postgresql-secret"))  # made by the Helm chart
    assert refs and refs <= set(kinds), refs - set(kinds)


# the oldest and newest Kubernetes releases whose OpenAPI schemas kubernetes-validate ships
K8S_VERSIONS = ("1.25.0", "1.37.0")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version):
    """Strict: a field the API does not know (a misspelled key) fails, as it would on a cluster."""
    for name in MANIFESTS:
        for d in _docs(name):
            kubernetes_validate.validate(d, version, strict=True)
    wrong = _docs("workers.yaml")[0]
    wrong["spec"]["replica"] = wrong["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        kubernetes_validate.validate(wrong, version, strict=True)


def test_workloads_select_their_pods_and_mount_the_shared_volume():
    (pvc,) = _docs("data-volume.yaml")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    data_dir = _docs("config.yaml")[0]["data"]["SOPILOT_DATA_DIR"]
    for name in ("api.yaml", "workers.yaml"):
        deployment = next(d for d in _docs(name) if d["kind"] == "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = deployment["spec"]["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: claims[m["name"]] for m in container["volumeMounts"]}
        assert mounts[data_dir] == pvc["metadata"]["name"], (name, mounts)
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"sopilot-config", "sopilot-env"}
    for d in _docs("api.yaml") + _docs("broker.yaml"):
        if d["kind"] == "Service":  # selects a workload's pods, on a port it names
            target = next(
                w
                for w in _docs("api.yaml") + _docs("broker.yaml")
                if w["kind"] in ("Deployment", "StatefulSet") and w["metadata"]["name"] == d["metadata"]["name"]
            )
            assert d["spec"]["selector"].items() <= target["spec"]["template"]["metadata"]["labels"].items()
            ports = {p["name"] for c in target["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            assert {p["targetPort"] for p in d["spec"]["ports"]} <= ports


def test_config_and_secret_name_real_settings_and_make_a_valid_celery_setup(monkeypatch):
    variables = _settings_variables()
    config = _docs("config.yaml")[0]["data"]
    secret = _docs("secret.example.yaml")[0]["stringData"]
    assert set(config) | set(secret) <= variables, (set(config) | set(secret)) - variables
    for k, v in {**config, **secret}.items():
        monkeypatch.setenv(k, v)
    s = Settings()  # the settings validate, the Celery executor's rules included
    assert s.executor == "celery" and s.celery_broker.startswith("amqp://")


def test_helm_values_name_our_code_location_and_run_coordinator():
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    module, attr = args[args.index("-m") + 1], args[args.index("-a") + 1]
    assert hasattr(importlib.import_module(module), attr)
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "CustomRunCoordinator"
    custom = coordinator["config"]["customRunCoordinator"]
    cls = getattr(importlib.import_module(custom["module"]), custom["class"])
    # the coordinator's own config schema accepts the values' config
    from dagster._config import validate_config

    assert validate_config(cls.config_type(), custom["config"]).success
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    for part in ("dagsterWebserver", "dagsterDaemon"):
        assert values[part]["image"] == deployment["image"]  # they load sopilot_pipelines.defs.run_queue
    assert values["postgresql"]["enabled"] is False


def _pip_steps(lines: list[str]) -> list[str]:
    """`pip install` steps, normalised: quiet/index flags and the extras' names dropped."""
    steps = []
    for line in lines:
        m = re.search(r"-m pip install (.*?)(?:&&|\\|$)", line)
        if not m:
            continue
        words = [
            w for w in m.group(1).split() if w not in ("-q",) and not w.startswith("${TORCH") and w != "--index-url"
        ]
        steps.append(" ".join(re.sub(r"\[.*\]", "[extras]", w).strip("'\"") for w in words))
    return steps


def test_the_dockerfile_installs_what_ci_installs():
    make = (ROOT / "Makefile").read_text()
    stamp = make[make.index("$(STAMP): pyproject.toml") :]
    stamp = stamp[: stamp.index("\n\n")]
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    assert _pip_steps(stamp.splitlines()) == _pip_steps(docker.splitlines()), (
        _pip_steps(stamp.splitlines()),
        _pip_steps(docker.splitlines()),
    )
    stages = {
        re.match(r"\S+ AS (\S+)", s).group(1): s for s in docker.split("\nFROM ")[1:] if " AS " in s.split("\n")[0]
    }
    extras = {name: re.search(r"EXTRAS=(\S+)", s).group(1) for name, s in stages.items()}
    assert extras == {"base-cpu": "vjepa2,hands", "base-cuda": "vjepa2,hands,gpu"}, extras
    copied = re.findall(r"^COPY (.+) \./", docker, flags=re.M)
    for names in copied:
        for name in names.split():
            assert (ROOT / name).exists(), name
