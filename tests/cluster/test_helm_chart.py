"""The Helm chart (deploy/helm/orderflow) renders valid Kubernetes and Dapr objects that
run what docker-compose.yml runs, checked offline: helm and kubeconform built from the Go
module proxy, the schemas kept locally (cluster/kube.py; `make k8s-tools`, `make k8s-check`).
"""

from __future__ import annotations

import base64
import collections
import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import kube
from cluster.compose import NOT_APPS
from cluster.config import DAPR_VERSION, ROOT

PRODUCTION = kube.CHART_VALUES[0]
REDIS_SECRET = {"name": "redis-auth", "key": "redis-password"}  # in production-values.yaml
# Dapr's two tokens: the pod annotation that names each one's Secret (key "token"), the
# variable the injector sets from it on daprd and the chart on every app container
TOKENS = {"dapr.io/api-token-secret": "DAPR_API_TOKEN", "dapr.io/app-token-secret": "APP_API_TOKEN"}
TOKEN_VALUES = ("daprApiToken", "appApiToken")  # under `security` in values.yaml


def _tools() -> None:
    for name in ("helm", "kubeconform"):
        if not kube.tool(name).exists():
            pytest.fail(f"{name} is not built: run `make k8s-tools` (make test does)")
    if not (kube.schema_dir() / ".pins").exists():
        pytest.fail("no schemas: run `make k8s-tools` (make test does)")


@functools.cache
def _manifests(values: Path | None) -> str:
    """`helm template` once per values file for the whole module (the chart does not
    change under it); each caller parses its own copy."""
    _tools()
    return kube.rendered(values)


def _objects(values: Path | None = None) -> list[dict[str, Any]]:
    return list(kube.documents(_manifests(values)))


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    kinds: dict[str, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
    for obj in objects:
        kinds[obj["kind"]][obj["metadata"]["name"]] = obj
    return kinds


def _compose_apps() -> dict[str, dict[str, Any]]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {n: s for n, s in services.items() if n not in NOT_APPS and not n.endswith("-dapr")}


def _deployments(values: Path | None = None) -> dict[str, dict[str, Any]]:
    """Each Deployment (the actor hosts': a StatefulSet) by the Dapr app id of its pods."""
    found = {}
    kinds = _by_kind(_objects(values))
    for deployment in [*kinds["Deployment"].values(), *kinds["StatefulSet"].values()]:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        found[annotations["dapr.io/app-id"]] = deployment
    return found


def _helm_template(
    *settings: str, required: tuple[str, ...] = kube.REQUIRED_SETTINGS
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with `--set` settings after the ones the chart requires
    (`required=()`: without them), not cached: it may fail."""
    _tools()
    argv = [str(kube.tool("helm")), "template", "orderflow", str(kube.CHART)]
    for setting in (*required, *settings):
        argv += ["--set", setting]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _pod_annotations(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("spec", {}).get("template", {}).get("metadata", {})
    return metadata.get("annotations") or {}


def _dapr_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template Dapr's injector adds a sidecar to, by its object's kind/name."""
    return {
        f"{obj['kind']}/{obj['metadata']['name']}": obj["spec"]["template"]
        for obj in objects
        if _pod_annotations(obj).get("dapr.io/enabled") == "true"
    }


def _token_secrets(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The token of every Secret the release renders, decoded, by the Secret's name."""
    return {
        obj["metadata"]["name"]: base64.b64decode(obj["data"]["token"]).decode()
        for obj in objects
        if obj["kind"] == "Secret"
    }


def _token_secret_names(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (Dapr API token, app token) Secrets each Dapr pod names ("" for none), as a set:
    one element when every pod names the same two."""
    dapr, app = TOKENS
    return {
        (pod["metadata"]["annotations"].get(dapr, ""), pod["metadata"]["annotations"].get(app, ""))
        for pod in _dapr_pods(objects).values()
    }


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_helm_lint_passes_strict(values: Path | None) -> None:
    _tools()
    argv = [str(kube.tool("helm")), "lint", "--strict", str(kube.CHART)]
    argv += kube.values_args(values)
    lint = subprocess.run(argv, capture_output=True, text=True, check=False)

    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_every_rendered_object_is_valid_against_kubernetes_and_dapr_schemas(
    values: Path | None,
) -> None:
    result = kube.kubeconform(_manifests(values))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout


def test_kubeconform_refuses_a_field_no_schema_declares() -> None:
    """The check can fail: an unknown container field, and an unknown Component field."""
    objects = _objects()
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            obj["spec"]["template"]["spec"]["containers"][0]["restartPolicyX"] = "Always"
        if obj["kind"] == "Component":
            obj["spec"]["metadataX"] = []
    result = kube.kubeconform(yaml.safe_dump_all(objects))

    assert result.returncode != 0
    assert "restartPolicyX" in result.stdout
    assert "metadataX" in result.stdout


def test_the_chart_runs_every_compose_app_with_its_command_and_port() -> None:
    deployments = _deployments()
    compose = _compose_apps()

    assert set(deployments) == set(compose)
    for app, service in compose.items():
        pod = deployments[app]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        command = [*container.get("command", []), *container.get("args", [])]
        assert command == service["command"], app
        port = command[command.index("--port") + 1]
        assert pod["metadata"]["annotations"]["dapr.io/app-port"] == port, app
        assert [p["containerPort"] for p in container["ports"]] == [int(port)], app


def test_every_pod_gets_the_pinned_sidecar_and_the_configuration() -> None:
    kinds = _by_kind(_objects())
    (configuration,) = kinds["Configuration"]

    for app, deployment in _deployments().items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/enabled"] == "true", app
        assert annotations["dapr.io/sidecar-image"] == f"daprio/daprd:{DAPR_VERSION}", app
        assert annotations["dapr.io/config"] == configuration, app
        assert annotations["dapr.io/enable-metrics"] == "true", app


def test_the_components_are_the_local_ones_with_redis_from_the_values() -> None:
    """Same type, version, metadata and scopes as components/*.yaml; Redis's address from
    the values instead of the local env secret store, which is not rendered; its password
    from the values' Secret, never a plain value."""
    rendered = _by_kind(_objects(PRODUCTION))["Component"]
    local = {}
    for path in sorted((ROOT / "components").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") == "Component" and doc["spec"]["type"] != "secretstores.local.env":
            local[doc["metadata"]["name"]] = doc

    assert set(rendered) == set(local)
    for name, doc in local.items():
        ours, theirs = rendered[name], doc
        assert ours["spec"]["type"] == theirs["spec"]["type"], name
        assert ours["spec"]["version"] == theirs["spec"]["version"], name
        assert ours.get("scopes") == theirs.get("scopes"), name
        same = {m["name"]: m.get("value") for m in theirs["spec"]["metadata"]}
        mine = {m["name"]: m.get("value") for m in ours["spec"]["metadata"]}
        assert mine.pop("redisHost") == "redis-master.data.svc.cluster.local:6379", name
        assert mine.pop("redisPassword") is None, name  # not a value: a reference
        same.pop("redisHost")
        assert same.pop("redisPassword") is None, name  # locally a reference too (env store)
        assert mine == same, name
        (password,) = [m for m in ours["spec"]["metadata"] if m["name"] == "redisPassword"]
        assert password["secretKeyRef"] == REDIS_SECRET, name
        assert ours["auth"] == {"secretStore": "kubernetes"}, name


def test_every_app_reads_the_redis_password_from_the_same_secret_or_none() -> None:
    """The apps open their own Redis connections (ORDERFLOW_REDIS_PASSWORD,
    actors/toolkit/redis_connection.py); without a Secret in the values, no password."""
    for values, expected in ((PRODUCTION, REDIS_SECRET), (None, None)):
        for app, deployment in _deployments(values).items():
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e for e in container["env"]}
            found = env.get("ORDERFLOW_REDIS_PASSWORD")
            assert (found and found["valueFrom"]["secretKeyRef"]) == expected, (app, values)


def test_the_resiliency_is_the_local_one() -> None:
    (rendered,) = _by_kind(_objects())["Resiliency"].values()
    local = yaml.safe_load((ROOT / "components" / "resiliency.yaml").read_text())

    assert rendered["spec"] == local["spec"]
    assert rendered.get("scopes") == local.get("scopes")


def test_actor_hosts_heal_their_sidecar_keep_their_names_and_survive_a_drain() -> None:
    """No watchdog runs in Kubernetes: the app shuts a wedged daprd down and the pod's
    restart brings a new one (actors/toolkit/sidecarprobe.py). A StatefulSet: the pod's
    name is its router's consumer name, the same after a restart. Two replicas, at most
    one down in a voluntary disruption."""
    kinds = _by_kind(_objects())
    host = _deployments()["actor-host"]
    env = {e["name"]: e for e in host["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert 10 <= float(env["ORDERFLOW_SIDECAR_SELF_HEAL_S"]["value"]) <= 25
    assert host["kind"] == "StatefulSet"
    assert env["ORDERFLOW_APP_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert kinds["Service"][host["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    assert host["spec"]["replicas"] >= 2
    (budget,) = kinds["PodDisruptionBudget"].values()
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= (
        host["spec"]["template"]["metadata"]["labels"].items()
    )


def test_every_container_runs_unprivileged_with_probes() -> None:
    for app, deployment in _deployments().items():
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
        assert context["runAsNonRoot"] is True, app
        assert context["allowPrivilegeEscalation"] is False, app
        assert context["readOnlyRootFilesystem"] is True, app
        assert context["capabilities"]["drop"] == ["ALL"], app
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz/app", (app, probe)
        assert container["resources"]["limits"]["memory"], app


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_every_dapr_pod_names_both_token_secrets_of_the_release_or_of_the_values(
    values: Path | None,
) -> None:
    """One Dapr API token and one app token for the whole release: every pod's injector
    annotations name the same two Secrets, each one the release renders (defaults) or the
    one the values name (production-values.yaml: Secrets made beforehand)."""
    objects = _objects(values)
    security = yaml.safe_load(values.read_text())["security"] if values else {}
    named = {token: security.get(token, {}).get("secretName") for token in TOKEN_VALUES}
    rendered = _token_secrets(objects)

    assert len(_dapr_pods(objects)) == len(_deployments(values)) == 5
    ((dapr, app),) = _token_secret_names(objects)
    assert dapr
    assert app
    assert dapr != app
    pairs = ((dapr, "daprApiToken"), (app, "appApiToken"))
    for secret, token in pairs:
        assert secret in rendered or secret == named[token], secret
    assert set(rendered) == {secret for secret, token in pairs if secret != named[token]}


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_every_app_container_gets_both_tokens_from_its_pods_secrets(
    values: Path | None,
) -> None:
    """The injector gives the tokens to daprd only: each app container reads the same
    two Secrets (key "token", the injector's) as its pod's annotations name."""
    for name, pod in _dapr_pods(_objects(values)).items():
        annotations = pod["metadata"]["annotations"]
        for container in pod["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for annotation, variable in TOKENS.items():
                assert variable in env, (name, container["name"], variable)
                assert env[variable] == {
                    "name": variable,
                    "valueFrom": {
                        "secretKeyRef": {"name": annotations[annotation], "key": "token"}
                    },
                }, (name, container["name"])


def test_by_default_the_release_makes_two_different_random_tokens() -> None:
    objects = _objects()
    tokens = _token_secrets(objects)
    ((dapr, app),) = _token_secret_names(objects)

    assert set(tokens) == {dapr, app}
    for token in tokens.values():
        # an HTTP header value, long enough not to be guessed
        assert len(token) >= 32, token
        assert token.isascii(), token
        assert token.isalnum(), token
    assert tokens[dapr] != tokens[app]
    # made at random (lookup finds no Secret under `helm template`), not written in
    again = _token_secrets(list(kube.documents(kube.rendered())))
    assert set(again) == set(tokens)
    assert not set(again.values()) & set(tokens.values())


DEFAULT_TOKEN_SECRETS = ("orderflow-dapr-api-token", "orderflow-app-api-token")


@pytest.mark.parametrize(
    ("dapr", "app"),
    [("ops-dapr", "ops-app"), ("ops-dapr", None), (None, "ops-app")],
    ids=["both named", "dapr token named", "app token named"],
)
def test_a_named_token_secret_is_used_and_not_created(dapr: str | None, app: str | None) -> None:
    settings = [
        f"security.{token}.secretName={name}"
        for token, name in zip(TOKEN_VALUES, (dapr, app), strict=True)
        if name
    ]
    render = _helm_template(*settings)
    assert render.returncode == 0, render.stderr
    objects = list(kube.documents(render.stdout))
    made = {
        default
        for default, named in zip(DEFAULT_TOKEN_SECRETS, (dapr, app), strict=True)
        if not named
    }

    assert set(_token_secrets(objects)) == made
    assert _token_secret_names(objects) == {
        (dapr or DEFAULT_TOKEN_SECRETS[0], app or DEFAULT_TOKEN_SECRETS[1])
    }


def test_one_secret_for_both_tokens_is_refused() -> None:
    render = _helm_template(
        "security.daprApiToken.secretName=ops-token", "security.appApiToken.secretName=ops-token"
    )

    assert render.returncode != 0
    assert 'both name the Secret "ops-token"' in render.stderr


GATEWAY_CLIENTS = "/etc/orderflow/gateway/clients.json"  # ORDERFLOW_GATEWAY_CLIENTS
CONSOLE_CLIENTS = "/etc/orderflow/clients/clients.json"  # ORDERFLOW_CONSOLE_CLIENTS


def _clients_secret(values: Path | None) -> str:
    """The Secret of gateway clients a rendering names: the values file's, else the one
    the check adds to the defaults (kube.REQUIRED_SETTINGS)."""
    if values is not None:
        name: str = yaml.safe_load(values.read_text())["gateway"]["clientsSecret"]["name"]
        return name
    (setting,) = kube.REQUIRED_SETTINGS
    key, _, name = setting.partition("=")
    assert key == "gateway.clientsSecret.name"
    return name


def _secret_volumes(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Secret volumes of a pod template, by volume name."""
    return {v["name"]: v["secret"] for v in pod["spec"].get("volumes", []) if "secret" in v}


def _clients_of(deployment: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """Where the app container reads the clients file (ORDERFLOW_GATEWAY_CLIENTS, or the
    console's ORDERFLOW_CONSOLE_CLIENTS) and its mounts of Secret volumes."""
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    secrets = _secret_volumes(pod)
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] in secrets]
    return env.get("ORDERFLOW_GATEWAY_CLIENTS") or env.get("ORDERFLOW_CONSOLE_CLIENTS"), mounts


def _deployments_of(manifests: str) -> dict[str, dict[str, Any]]:
    return {
        obj["spec"]["template"]["metadata"]["annotations"]["dapr.io/app-id"]: obj
        for obj in kube.documents(manifests)
        if obj["kind"] in ("Deployment", "StatefulSet")
    }


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_only_the_gateway_and_the_console_read_the_clients_file_from_the_named_secret(
    values: Path | None,
) -> None:
    """Mounted read-only, as the whole Secret volume (no subPath: the kubelet keeps it
    current), readable by the pods' uid 10001 through their fsGroup and mode 0440. The
    console admits its operators (apps/console/auth.py)."""
    deployments = _deployments(values)
    for app, path in (("gateway", GATEWAY_CLIENTS), ("console", CONSOLE_CLIENTS)):
        deployment = deployments.pop(app)
        pod = deployment["spec"]["template"]
        variable, mounts = _clients_of(deployment)

        assert variable == path, app
        (mount,) = mounts
        assert mount["mountPath"] == str(Path(path).parent)
        assert mount["readOnly"] is True
        assert "subPath" not in mount
        assert _secret_volumes(pod)[mount["name"]] == {
            "secretName": _clients_secret(values),
            "items": [{"key": "clients.json", "path": Path(path).name}],
            "defaultMode": 0o440,
        }
        assert pod["spec"]["securityContext"]["fsGroup"] == 10001
    for app, deployment in deployments.items():
        assert _clients_of(deployment) == (None, []), app
        assert _secret_volumes(deployment["spec"]["template"]) == {}, app


def test_a_clients_secret_key_and_a_pod_without_fsgroup_are_followed() -> None:
    render = _helm_template(
        "gateway.clientsSecret.name=ops-clients",
        "gateway.clientsSecret.key=gateway.json",
        "podSecurityContext.fsGroup=null",
    )
    assert render.returncode == 0, render.stderr
    gateway = _deployments_of(render.stdout)["gateway"]

    (volume,) = _secret_volumes(gateway["spec"]["template"]).values()
    assert volume["secretName"] == "ops-clients"
    assert volume["items"] == [{"key": "gateway.json", "path": "clients.json"}]
    assert volume["defaultMode"] == 0o444  # no fsGroup: root's file, read by "other"
    assert _clients_of(gateway)[0] == GATEWAY_CLIENTS


def test_rendering_without_a_clients_secret_fails_saying_how_to_make_one() -> None:
    render = _helm_template(required=())

    assert render.returncode != 0
    for hint in (
        "gateway.clientsSecret.name is required",
        "python -m apps.gateway.auth add --file clients.json --id ",
        "--scope customer",
        "kubectl -n default create secret generic orderflow-gateway-clients "
        "--from-file=clients.json",
        "--set gateway.clientsSecret.name=orderflow-gateway-clients",
        "--set gateway.allowAnonymous=true",
    ):
        assert hint in render.stderr, hint


def test_allow_anonymous_renders_an_open_gateway_without_a_clients_file() -> None:
    render = _helm_template("gateway.allowAnonymous=true", required=())
    assert render.returncode == 0, render.stderr
    deployments = _deployments_of(render.stdout)

    assert len(deployments) == 5
    for app, deployment in deployments.items():
        assert _clients_of(deployment) == (None, []), app
    assert kube.kubeconform(render.stdout).returncode == 0


def test_a_clients_secret_and_allow_anonymous_together_are_refused() -> None:
    render = _helm_template("gateway.allowAnonymous=true")

    assert render.returncode != 0
    assert (
        'gateway.clientsSecret.name ("orderflow-gateway-clients") and '
        "gateway.allowAnonymous=true: choose one"
    ) in render.stderr
