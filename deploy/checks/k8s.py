"""deploy/k8s: render every kustomization with kustomize (the pinned kubectl's), validate the
objects against the Kubernetes OpenAPI schemas offline (kubernetes-validate), and check the
rules the platform holds itself to, beyond what checkov checks.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import yaml

Obj = dict[str, Any]

# The oldest Kubernetes the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# The services that write links people follow (the portal's sign-in mails, every
# notification): each must be told where people reach the portal, or its links point to the
# default http://127.0.0.1:8000.
LINK_WRITERS = ("portal", "notifications")
# Custom resources have no schema in kubernetes-validate; kustomize has checked their shape.
CUSTOM_KINDS = {("external-secrets.io/v1", "ExternalSecret")}
# An overlay the checks add to the copy: the base with the external-secrets component, to
# prove that the component supplies every Secret the base needs.
EXTERNAL_SECRETS_OVERLAY = "overlays/_with-external-secrets"
EXTERNAL_SECRETS_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: kitakyushu-internships
resources: [../../base]
components: [../../components/external-secrets]
images:
  - name: kitakyushu-internships
    newName: registry.example/kitakyushu-internships
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
"""


@dataclass
class Rendering:
    name: str  # e.g. "overlays/example"
    path: Path  # the rendered multi-document YAML
    objects: list[Obj]
    deployable: bool  # an overlay (all checks) rather than the base (schemas only)


def render_all(source: Path, kubectl: Path, workdir: Path) -> list[Rendering]:
    """Copy deploy/k8s to `workdir`, give each overlay's secretGenerator its example files
    (the real ones are never committed), and render the base and every overlay."""
    tree = workdir / "k8s"
    shutil.copytree(source, tree, ignore=real_secrets)
    for example in tree.glob("overlays/*/secrets/*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    (tree / EXTERNAL_SECRETS_OVERLAY).mkdir(parents=True)
    (tree / EXTERNAL_SECRETS_OVERLAY / "kustomization.yaml").write_text(
        EXTERNAL_SECRETS_KUSTOMIZATION
    )
    targets = [tree / "base", *sorted(p.parent for p in tree.glob("overlays/*/kustomization.yaml"))]
    renderings = []
    for target in targets:
        name = str(target.relative_to(tree))
        built = subprocess.run(
            [str(kubectl), "kustomize", str(target)], capture_output=True, text=True
        )
        if built.returncode != 0:
            raise SystemExit(f"kustomize {name} failed:\n{built.stderr}")
        path = workdir / f"{name.replace('/', '_')}.yaml"
        path.write_text(built.stdout)
        objects = [o for o in yaml.safe_load_all(built.stdout) if o]
        renderings.append(Rendering(name, path, objects, deployable=name != "base"))
    return renderings


def real_secrets(directory: str, names: list[str]) -> list[str]:
    """Leave an operator's filled-in secrets/*.env out of the copy."""
    if Path(directory).name != "secrets":
        return []
    return [n for n in names if n.endswith(".env")]


def validate_schemas(rendering: Rendering) -> list[str]:
    problems = []
    for obj in rendering.objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{rendering.name}: {ref(obj)} (Kubernetes {version}): {error}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{rendering.name}: {ref(obj)}: {error.message}")
    return problems


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items()) and not selector.get(
        "matchExpressions"
    )


def check_rules(rendering: Rendering) -> list[str]:
    """The platform's own rules for a deployable rendering; each problem is one line."""
    objects = rendering.objects
    problems = [f"{rendering.name}: {p}" for p in namespace_rules(objects)]
    problems += link_rules(rendering)
    for deployment in of_kind(objects, "Deployment"):
        for problem in deployment_rules(deployment, objects):
            problems.append(f"{rendering.name}: {ref(deployment)}: {problem}")
    for ingress in of_kind(objects, "Ingress"):
        for problem in ingress_rules(ingress, objects):
            problems.append(f"{rendering.name}: {ref(ingress)}: {problem}")
    return problems


def namespace_rules(objects: list[Obj]) -> Iterator[str]:
    namespaces = of_kind(objects, "Namespace")
    if len(namespaces) != 1:
        yield "expected exactly one Namespace"
        return
    labels = namespaces[0]["metadata"].get("labels", {})
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        yield "the Namespace does not enforce the restricted Pod Security Standard"
    name = namespaces[0]["metadata"]["name"]
    for obj in objects:
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != name:
            yield f"{ref(obj)} is not in namespace {name}"
    if not any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in of_kind(objects, "NetworkPolicy")
    ):
        yield "no default-deny NetworkPolicy for the namespace"


def deployment_rules(deployment: Obj, objects: list[Obj]) -> Iterator[str]:
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if spec.get("replicas", 1) < 2:
        yield "fewer than 2 replicas"
    if pod.get("automountServiceAccountToken") is not False:
        yield "the pod mounts a service-account token"
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    account = accounts.get(pod.get("serviceAccountName", "default"))
    if account is None or account.get("automountServiceAccountToken") is not False:
        yield "no own ServiceAccount with automountServiceAccountToken: false"
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True or pod_security.get("runAsUser", 0) < 10000:
        yield "the pod may run as root or a low UID"
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield "the pod's seccomp profile is not RuntimeDefault"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        yield from container_rules(container, volumes)
    yield from reference_rules(pod, objects)
    if not any(
        selects(p["spec"]["selector"], labels) for p in of_kind(objects, "PodDisruptionBudget")
    ):
        yield "no PodDisruptionBudget"
    own_policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)
    ]
    if not own_policies:
        yield "no NetworkPolicy of its own"
    if not any(
        selects({"matchLabels": s["spec"]["selector"]}, labels) for s in of_kind(objects, "Service")
    ):
        yield "no Service"


def container_rules(container: Obj, volumes: dict[str, Obj]) -> Iterator[str]:
    name = container["name"]
    image = container["image"]
    if "@sha256:" not in image:
        yield f"container {name}: image {image} is not pinned by digest"
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False:
        yield f"container {name}: privilege escalation allowed"
    if security.get("readOnlyRootFilesystem") is not True:
        yield f"container {name}: root filesystem writable"
    if security.get("capabilities", {}).get("drop") != ["ALL"]:
        yield f"container {name}: capabilities not all dropped"
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        yield f"container {name}: no emptyDir on /tmp"
    for probe_name, path in (
        ("startupProbe", "/health/live"),
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
    ):
        probe = container.get(probe_name)
        if probe is None:
            yield f"container {name}: no {probe_name}"
        elif probe.get("httpGet", {}).get("path") != path or "timeoutSeconds" not in probe:
            yield f"container {name}: {probe_name} is not GET {path} with an explicit timeout"
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(bound, {}):
                yield f"container {name}: no {resource} {bound[:-1]}"
    for variable in container.get("env", []):
        if "secretKeyRef" in variable.get("valueFrom", {}):
            yield f"container {name}: secret {variable['name']} in the environment"
    if any("secretRef" in source for source in container.get("envFrom", [])):
        yield f"container {name}: a Secret as environment variables"


def reference_rules(pod: Obj, objects: list[Obj]) -> Iterator[str]:
    """Every ConfigMap and Secret the pod needs exists in the rendering (or, for a Secret, is
    made by an ExternalSecret); optional ones may be missing."""
    config_maps = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"] for o in of_kind(objects, "Secret")} | {
        o["spec"]["target"]["name"] for o in of_kind(objects, "ExternalSecret")
    }
    needed: list[tuple[str, str, bool]] = []
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                ref_ = source["configMapRef"]
                needed.append(("ConfigMap", ref_["name"], ref_.get("optional", False)))
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            cm = volume["configMap"]
            needed.append(("ConfigMap", cm["name"], cm.get("optional", False)))
        if "secret" in volume:
            needed.append(("Secret", volume["secret"]["secretName"], False))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                s = source["secret"]
                needed.append(("Secret", s["name"], s.get("optional", False)))
    for kind, name, optional in needed:
        present = name in (config_maps if kind == "ConfigMap" else secrets)
        if not present and not optional:
            yield f"needs {kind} {name}, which the rendering does not contain"


def ingress_rules(ingress: Obj, objects: list[Obj]) -> Iterator[str]:
    spec = ingress["spec"]
    tls_hosts = {h for t in spec.get("tls", []) for h in t.get("hosts", [])}
    services = {s["metadata"]["name"] for s in of_kind(objects, "Service")}
    for rule in spec.get("rules", []):
        if rule.get("host") not in tls_hosts:
            yield f"host {rule.get('host')} is served without TLS"
        for path in rule.get("http", {}).get("paths", []):
            backend = path["backend"]["service"]["name"]
            if backend not in services:
                yield f"backend Service {backend} does not exist"
    annotations = ingress["metadata"].get("annotations", {})
    if annotations.get("nginx.ingress.kubernetes.io/force-ssl-redirect") != "true":
        yield "plain HTTP is not redirected to HTTPS"
    backends = {
        path["backend"]["service"]["name"]
        for rule in spec.get("rules", [])
        for path in rule.get("http", {}).get("paths", [])
    }
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        served = [
            s["metadata"]["name"]
            for s in of_kind(objects, "Service")
            if s["metadata"]["name"] in backends
            and selects({"matchLabels": s["spec"]["selector"]}, labels)
        ]
        if served:
            yield from proxy_rules(deployment, objects)


def proxy_rules(deployment: Obj, objects: list[Obj]) -> Iterator[str]:
    """Behind the Ingress every connection comes from the ingress controller: uvicorn must be
    told to believe its X-Forwarded-For (FORWARDED_ALLOW_IPS), or every visitor has the
    controller's address and per-client limits lock everyone out at once."""
    name = deployment["metadata"]["name"]
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        trusted = environment(container, objects).get("FORWARDED_ALLOW_IPS", "").strip()
        if not trusted:
            yield (
                f"container {container['name']} of {name} (behind the Ingress): "
                "FORWARDED_ALLOW_IPS is not set, so every visitor is the ingress controller"
            )
        elif "*" in trusted.split(","):
            yield (
                f"container {container['name']} of {name}: FORWARDED_ALLOW_IPS=* believes "
                "any peer's X-Forwarded-For; name the ingress controller's addresses"
            )


def environment(container: Obj, objects: list[Obj]) -> dict[str, str]:
    """The plain environment a container gets: its ConfigMaps (envFrom), then its own env."""
    config_maps = {o["metadata"]["name"]: o for o in of_kind(objects, "ConfigMap")}
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = config_maps.get(source["configMapRef"]["name"], {})
            prefix = source.get("prefix", "")
            values.update({prefix + k: str(v) for k, v in config_map.get("data", {}).items()})
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = str(variable["value"])
    return values


def deployment_environment(deployment: Obj, objects: list[Obj]) -> dict[str, str]:
    """The plain environment of a Deployment's first container."""
    return environment(deployment["spec"]["template"]["spec"]["containers"][0], objects)


def link_rules(rendering: Rendering) -> list[str]:
    """Every service that writes links gets PUBLIC_BASE_URL, all the same one; in a
    deployable rendering it is https and a host the Ingress serves."""
    objects = rendering.objects
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    problems: list[str] = []
    urls: dict[str, str] = {}
    for name in LINK_WRITERS:
        if name not in deployments:
            problems.append(f"{rendering.name}: no Deployment {name}")
            continue
        url = deployment_environment(deployments[name], objects).get("PUBLIC_BASE_URL", "").strip()
        if not url:
            problems.append(
                f"{rendering.name}: Deployment/{name}: writes links but gets no PUBLIC_BASE_URL "
                "(they would point to http://127.0.0.1:8000)"
            )
        else:
            urls[name] = url
    if len(set(urls.values())) > 1:
        problems.append(f"{rendering.name}: the services disagree on PUBLIC_BASE_URL: {urls}")
    hosts = {r.get("host") for i in of_kind(objects, "Ingress") for r in i["spec"].get("rules", [])}
    for name, url in urls.items():
        if rendering.deployable and hosts and urlsplit(url).hostname not in hosts:
            problems.append(
                f"{rendering.name}: Deployment/{name}: PUBLIC_BASE_URL {url} is not a host the "
                f"Ingress serves ({', '.join(sorted(str(h) for h in hosts))})"
            )
        if rendering.deployable and urlsplit(url).scheme != "https":
            problems.append(f"{rendering.name}: Deployment/{name}: PUBLIC_BASE_URL is not https")
    return problems
