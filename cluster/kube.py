"""The Kubernetes checks' tools, built here, and their schemas, kept here: no cluster needed.

`python -m cluster k8s-tools` (part of `make setup`) builds helm and kubeconform from the
Go module proxy into `<runtime>/k8s/bin`, and writes the JSON schemas kubeconform reads
into `<runtime>/k8s/schemas/v<K8S_VERSION>-local-strict/`:

- Kubernetes' own kinds from the `kubernetes-validate` wheel on PyPI (pinned, its SHA-256
  checked), whose schemas reference one `_definitions.json` by an absolute path its own
  resolver maps; here the references are made relative, so kubeconform resolves them
  beside the file;
- Dapr's kinds (Component, Configuration, Resiliency, Subscription...) from the CRDs in
  the pinned Dapr module (`charts/dapr/crds`, the module the runtime build downloads),
  made strict as kubeconform's own CRD conversion makes them (no field a CRD does not
  declare, except where it keeps unknown fields).

`python -m cluster k8s-check` (`make k8s-check`, part of `make test`'s suite through
tests/cluster/test_helm_chart.py) lints the chart and validates what it renders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from cluster.config import DAPR_VERSION, ROOT, ClusterConfig

HELM = ("helm.sh/helm/v4/cmd/helm", "v4.3.2")
KUBECONFORM = ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.7.0")
K8S_VERSION = "1.33.0"  # the Kubernetes release the chart is validated against
WHEEL = "kubernetes_validate-1.37.0-py3-none-any.whl"
WHEEL_SHA256 = "85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9"
CHART = ROOT / "deploy" / "helm" / "orderflow"
Completed = subprocess.CompletedProcess[str]
# value files the check renders besides the defaults: a production-like set of choices
CHART_VALUES = (CHART / "ci" / "production-values.yaml",)
# What an operator must set that values.yaml cannot hold: the Secret with the gateway's
# clients file (rendering fails without it). "The defaults" are values.yaml plus these.
REQUIRED_SETTINGS = ("gateway.clientsSecret.name=orderflow-gateway-clients",)


def k8s_dir(runtime_dir: Path | None = None) -> Path:
    return (runtime_dir or ClusterConfig.from_env().runtime_dir) / "k8s"


def tool(name: str, runtime_dir: Path | None = None) -> Path:
    return k8s_dir(runtime_dir) / "bin" / name


def schema_dir(runtime_dir: Path | None = None) -> Path:
    return k8s_dir(runtime_dir) / "schemas" / f"v{K8S_VERSION}-local-strict"


def _say(line: str) -> None:
    print(f"[setup] {line}", flush=True)


def build_tools(runtime_dir: Path | None = None) -> None:
    """helm and kubeconform at their pinned versions (a stamp beside each says which)."""
    for package, version in (HELM, KUBECONFORM):
        name = package.rsplit("/", 1)[1]
        stamp = tool(f"{name}.version", runtime_dir)
        if tool(name, runtime_dir).exists() and stamp.exists() and stamp.read_text() == version:
            _say(f"{name} {version}")
            continue
        _say(f"building {name} {version} from the Go module proxy (1-3 minutes, once)")
        stamp.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(stamp.parent), "GOTOOLCHAIN": "local"}
        env["GOFLAGS"] = "-trimpath -buildvcs=false"
        subprocess.run(["go", "install", f"{package}@{version}"], env=env, check=True)
        stamp.write_text(version)
        _say(f"{name} {version} in {stamp.parent}")


def write_schemas(runtime_dir: Path | None = None) -> None:
    """Kubernetes' and Dapr's schemas for kubeconform (module docstring); once per pin."""
    target = schema_dir(runtime_dir)
    stamp = target / ".pins"
    pins = f"{WHEEL} {WHEEL_SHA256} dapr {DAPR_VERSION}"
    if stamp.exists() and stamp.read_text() == pins:
        _say(f"Kubernetes {K8S_VERSION} and Dapr {DAPR_VERSION} schemas in {target}")
        return
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    count = _kubernetes_schemas(_wheel(k8s_dir(runtime_dir) / "wheel"), target)
    count += _dapr_schemas(_dapr_crds(), target)
    stamp.write_text(pins)
    _say(f"{count} schemas (Kubernetes {K8S_VERSION}, Dapr {DAPR_VERSION}) in {target}")


def _wheel(folder: Path) -> Path:
    path = folder / WHEEL
    if not path.exists():
        _say(f"downloading {WHEEL} (22 MB) from PyPI for its Kubernetes schemas")
        version = WHEEL.split("-")[1]
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder)]
        subprocess.run([*pip, f"kubernetes-validate=={version}"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        path.unlink()
        raise SystemExit(f"{WHEEL}: SHA-256 {digest}, expected {WHEEL_SHA256}; removed it")
    return path


def _kubernetes_schemas(wheel: Path, target: Path) -> int:
    """Each kind's schema, standalone: the definitions it reaches copied into its own
    `$defs` (kubeconform resolves no reference to another local file)."""
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{K8S_VERSION}-local-strict/"
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"{wheel.name} holds no schemas for Kubernetes {K8S_VERSION}")
        texts = {n.removeprefix(prefix): archive.read(n).decode() for n in names}
    definitions = json.loads(texts.pop("_definitions.json").replace(SHARED, '"#'))["$defs"]
    texts.pop("all.json", None)
    for name, text in texts.items():
        schema = json.loads(text.replace(SHARED, '"#'))
        schema["$defs"] = _reached(schema, definitions)
        (target / name).write_text(json.dumps(schema, separators=(",", ":")))
    return len(texts)


SHARED = '"/api/_definitions.json#'  # how the wheel's schemas name their shared file


def _reached(schema: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """The definitions `schema` references, directly or through one another."""
    reached: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
            if name and name not in reached:
                reached[name] = definitions[name]
                pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return reached


def _dapr_crds() -> list[dict[str, Any]]:
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/dapr/dapr@v{DAPR_VERSION}"],
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
        check=True,
    )
    crds = Path(json.loads(found.stdout)["Dir"]) / "charts" / "dapr" / "crds"
    docs = (yaml.safe_load_all(path.read_text()) for path in sorted(crds.glob("*.yaml")))
    crd = "CustomResourceDefinition"
    return [doc for group in docs for doc in group if doc and doc.get("kind") == crd]


def _dapr_schemas(crds: Sequence[dict[str, Any]], target: Path) -> int:
    count = 0
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
            (target / name).write_text(json.dumps(schema, indent=1))
            count += 1
    return count


def _strict(schema: Any) -> Any:
    """No property an object does not declare, as kubeconform's strict mode expects (an
    object that keeps unknown fields, or declares none, is left open)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    keeps = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not keeps:
        out["additionalProperties"] = False
    return out


def values_args(values: Path | None) -> list[str]:
    """helm's arguments for one set of values: a values file (which names what the chart
    requires), else the defaults with REQUIRED_SETTINGS."""
    if values is not None:
        return ["--values", str(values)]
    return [arg for setting in REQUIRED_SETTINGS for arg in ("--set", setting)]


def rendered(values: Path | None = None, *, runtime_dir: Path | None = None) -> str:
    """`helm template` of the chart, with one more values file if given."""
    argv = [str(tool("helm", runtime_dir)), "template", "orderflow", str(CHART)]
    argv += values_args(values)
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def kubeconform(manifests: str, *, runtime_dir: Path | None = None) -> Completed:
    location = schema_dir(runtime_dir).parent / (
        "{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )
    argv = [str(tool("kubeconform", runtime_dir)), "-strict", "-summary"]
    argv += ["-kubernetes-version", K8S_VERSION, "-schema-location", str(location)]
    return subprocess.run(argv, input=manifests, capture_output=True, text=True, check=False)


def documents(manifests: str) -> Iterator[dict[str, Any]]:
    yield from (doc for doc in yaml.safe_load_all(manifests) if doc)


def check() -> int:
    """`make k8s-check`: helm lint and kubeconform, for the defaults and each values file."""
    failed = 0
    choices: list[Path | None] = [None, *CHART_VALUES]
    for values in choices:
        lint = [str(tool("helm")), "lint", "--strict", str(CHART), *values_args(values)]
        failed |= subprocess.run(lint, check=False).returncode
        result = kubeconform(rendered(values))
        label = values.name if values else f"default values + {' '.join(REQUIRED_SETTINGS)}"
        print(f"{CHART.relative_to(ROOT)} ({label}): {result.stdout.strip()}{result.stderr}")
        failed |= result.returncode
    return 1 if failed else 0


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["tools"]:
        build_tools()
        write_schemas()
        return 0
    return check()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
