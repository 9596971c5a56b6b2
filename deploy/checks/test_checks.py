"""The deploy checks catch what they claim to catch (run by `make deploy-check` in the
deploy-tools venv, before the checks themselves)."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.checks import compose, dockerfile, k8s, monitoring

ROOT = Path(__file__).resolve().parents[2]


# --- docker-compose.yml ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A:-d}", {"A": "v"}, "v"),
        ("$A/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$$(echo)", {}, "$(echo)"),
        ("${A:+x}", {"A": "v"}, "x"),
        ("${A:+x}", {}, ""),
    ],
)
def test_compose_interpolation(text: str, environ: dict[str, str], expected: str) -> None:
    assert compose.interpolate_text(text, environ) == expected


def test_compose_required_variable() -> None:
    with pytest.raises(compose.InterpolationError, match="A: say so"):
        compose.interpolate_text("${A:?say so}", {})


def compose_problems(change: Callable[[dict[str, Any]], None]) -> list[str]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    change(raw)
    document = compose.interpolate(raw, compose.ENVIRONMENT)
    return list(compose.rules(document, raw))


def test_compose_as_committed_passes() -> None:
    problems, document = compose.check(ROOT / "docker-compose.yml")
    assert problems == []
    assert set(compose.PLATFORM) <= set(document["services"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["services"]["portal"].update(ports=["8000:8000"]), "beyond 127.0.0.1"),
        (lambda c: c["services"]["matching"].pop("healthcheck"), "matching: no health check"),
        (lambda c: c["services"]["portal"].update(depends_on=["applications"]), "conditions"),
        (
            lambda c: c["services"]["matching"].update(build={"context": "."}),
            "exactly one service should build",
        ),
        (lambda c: c["services"]["portal"].update(image="other"), "share one image"),
        (lambda c: c["services"]["notifications"].pop("read_only"), "root filesystem"),
        (
            lambda c: c["services"]["applications"]["environment"].update(JWT_SECRET="literal"),
            "JWT_SECRET is not taken from the environment",
        ),
        (
            lambda c: c["services"]["portal"]["environment"].pop("FORWARDED_ALLOW_IPS"),
            "portal: FORWARDED_ALLOW_IPS is not set",
        ),
    ],
)
def test_compose_rules_catch(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    assert any(expected in p for p in compose_problems(change))


def without_public_url(service: str) -> Callable[[dict[str, Any]], None]:
    def change(c: dict[str, Any]) -> None:
        env = c["services"][service]["environment"]  # may be the shared anchor's mapping
        c["services"][service]["environment"] = {
            k: v for k, v in env.items() if k != "PUBLIC_BASE_URL"
        }

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (without_public_url("notifications"), "notifications: writes links but gets no"),
        (without_public_url("portal"), "portal: writes links but gets no"),
        (
            lambda c: c["services"]["portal"]["environment"].update(
                PUBLIC_BASE_URL="https://elsewhere.example"
            ),
            "disagree on PUBLIC_BASE_URL",
        ),
    ],
)
def test_compose_every_service_that_writes_links_knows_the_portal(
    change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    assert any(expected in p for p in compose_problems(change))


def test_compose_schema_catches_unknown_keys(tmp_path: Path) -> None:
    text = (ROOT / "docker-compose.yml").read_text().replace("init: true", "inits: true")
    (tmp_path / "docker-compose.yml").write_text(text)
    problems, _ = compose.check(tmp_path / "docker-compose.yml")
    assert any("compose-spec" in p and "inits" in p for p in problems)


# --- deploy/k8s --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> k8s.Rendering:
    kubectl = os.environ.get("KUBECTL")
    if not kubectl:
        pytest.fail("set KUBECTL to the kubectl `make` unpacked (make deploy-check does)")
    workdir = tmp_path_factory.mktemp("k8s")
    renderings = k8s.render_all(ROOT / "deploy" / "k8s", Path(kubectl).resolve(), workdir)
    return next(r for r in renderings if r.name == "overlays/example")


def changed(example: k8s.Rendering, change: Callable[[list[dict[str, Any]]], None]) -> list[str]:
    objects = copy.deepcopy(example.objects)
    change(objects)
    return k8s.check_rules(k8s.Rendering(example.name, example.path, objects, True))


def deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in k8s.of_kind(objects, "Deployment") if o["metadata"]["name"] == name)


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return deployment(objects, name)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def drop(kind: str, name: str) -> Callable[[list[dict[str, Any]]], None]:
    def change(objects: list[dict[str, Any]]) -> None:
        objects[:] = [
            o for o in objects if not (o["kind"] == kind and o["metadata"]["name"] == name)
        ]

    return change


def portal_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The data of the portal's own ConfigMap (its name carries the generator's hash)."""
    found = [
        o for o in k8s.of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("portal-")
    ]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]["data"]  # type: ignore[no-any-return]


def test_example_overlay_passes(example: k8s.Rendering) -> None:
    assert k8s.check_rules(example) == []
    assert k8s.validate_schemas(example) == []
    assert len(k8s.of_kind(example.objects, "Deployment")) == 4
    # The overlay names its own ingress controller's range (merged over the base's).
    assert portal_config(example.objects)["FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (drop("PodDisruptionBudget", "matching"), "Deployment/matching: no PodDisruptionBudget"),
        (drop("NetworkPolicy", "portal"), "Deployment/portal: no NetworkPolicy of its own"),
        (drop("NetworkPolicy", "default-deny"), "no default-deny NetworkPolicy"),
        (
            lambda o: container(o, "applications")["securityContext"].pop("readOnlyRootFilesystem"),
            "root filesystem writable",
        ),
        (
            lambda o: container(o, "applications")["securityContext"].update(
                allowPrivilegeEscalation=True
            ),
            "privilege escalation allowed",
        ),
        (
            lambda o: container(o, "notifications").update(image="registry.example/x:1.0"),
            "not pinned by digest",
        ),
        (lambda o: container(o, "portal").pop("startupProbe"), "no startupProbe"),
        (
            lambda o: container(o, "matching")["readinessProbe"].pop("timeoutSeconds"),
            "explicit timeout",
        ),
        (
            lambda o: container(o, "matching")["resources"]["limits"].pop("cpu"),
            "no cpu limit",
        ),
        (
            lambda o: container(o, "portal").update(
                env=[
                    {"name": "JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}
                ]
            ),
            "secret JWT_SECRET in the environment",
        ),
        (
            lambda o: deployment(o, "matching")["spec"]["template"]["spec"].pop(
                "automountServiceAccountToken"
            ),
            "service-account token",
        ),
        (
            lambda o: k8s.of_kind(o, "Secret")[0]["metadata"].update(name="gone"),
            "which the rendering does not contain",
        ),
        (
            lambda o: k8s.of_kind(o, "Ingress")[0]["spec"].pop("tls"),
            "served without TLS",
        ),
        (
            lambda o: k8s.of_kind(o, "Namespace")[0]["metadata"]["labels"].clear(),
            "restricted Pod Security Standard",
        ),
        (
            lambda o: portal_config(o).pop("FORWARDED_ALLOW_IPS"),
            "portal (behind the Ingress): FORWARDED_ALLOW_IPS is not set",
        ),
        (
            lambda o: portal_config(o).update(FORWARDED_ALLOW_IPS=""),
            "FORWARDED_ALLOW_IPS is not set",
        ),
        (
            lambda o: portal_config(o).update(FORWARDED_ALLOW_IPS="10.0.0.0/8,*"),
            "FORWARDED_ALLOW_IPS=* believes any peer",
        ),
    ],
)
def test_k8s_rules_catch(
    example: k8s.Rendering, change: Callable[[list[dict[str, Any]]], None], expected: str
) -> None:
    problems = changed(example, change)
    assert any(expected in p for p in problems), problems


def config_map(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    return next(  # type: ignore[no-any-return]
        o for o in k8s.of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith(prefix)
    )


def public_url_for_the_portal_only(objects: list[dict[str, Any]]) -> None:
    """How it was: the address in the portal's ConfigMap only, not the platform's."""
    url = config_map(objects, "platform-config")["data"].pop("PUBLIC_BASE_URL")
    config_map(objects, "portal-config")["data"]["PUBLIC_BASE_URL"] = url


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            public_url_for_the_portal_only,
            "Deployment/notifications: writes links but gets no PUBLIC_BASE_URL",
        ),
        (
            lambda o: (
                config_map(o, "portal-config")["data"].update(
                    PUBLIC_BASE_URL="https://internships.example.jp/portal"
                )
                or None
            ),
            "disagree on PUBLIC_BASE_URL",
        ),
        (
            lambda o: config_map(o, "platform-config")["data"].update(
                PUBLIC_BASE_URL="https://portal.example.invalid"
            ),
            "is not a host the Ingress serves",
        ),
        (
            lambda o: config_map(o, "platform-config")["data"].update(
                PUBLIC_BASE_URL="http://internships.example.jp"
            ),
            "PUBLIC_BASE_URL is not https",
        ),
    ],
)
def test_k8s_every_service_that_writes_links_knows_the_portal(
    example: k8s.Rendering, change: Callable[[list[dict[str, Any]]], None], expected: str
) -> None:
    problems = changed(example, change)
    assert any(expected in p for p in problems), problems


def test_k8s_base_gives_every_service_that_writes_links_the_portal_address(
    tmp_path: Path,
) -> None:
    kubectl = os.environ.get("KUBECTL")
    if not kubectl:
        pytest.fail("set KUBECTL to the kubectl `make` unpacked (make deploy-check does)")
    renderings = k8s.render_all(ROOT / "deploy" / "k8s", Path(kubectl).resolve(), tmp_path)
    base = next(r for r in renderings if r.name == "base")
    assert k8s.link_rules(base) == []
    public_url_for_the_portal_only(base.objects)
    assert any("notifications: writes links" in p for p in k8s.link_rules(base))


def test_k8s_schemas_catch_an_unknown_field(example: k8s.Rendering) -> None:
    objects = copy.deepcopy(example.objects)
    container(objects, "portal")["livenessProbe"]["timeout"] = 3  # not a Probe field
    problems = k8s.validate_schemas(k8s.Rendering(example.name, example.path, objects, True))
    assert any("Deployment/portal" in p and "timeout" in p for p in problems)


# --- deploy/Dockerfile and .dockerignore -------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("shared", "services", "requirements"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "deploy").mkdir()
    for name in ("Dockerfile", "__init__.py", "healthcheck.py"):
        shutil.copyfile(ROOT / "deploy" / name, tmp_path / "deploy" / name)
    shutil.copyfile(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    (tmp_path / ".data").mkdir()
    (tmp_path / ".data" / "embedded.env").write_text("JWT_SECRET=local\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("")
    return tmp_path


def dockerfile_problems(project: Path) -> list[str]:
    return list(dockerfile.check(project, project / "deploy" / "Dockerfile"))


def test_dockerfile_as_committed_passes(project: Path) -> None:
    assert dockerfile_problems(project) == []
    included = dockerfile.context_files(project, project / "deploy" / "Dockerfile")
    assert "deploy/healthcheck.py" in included
    assert not any(p.startswith((".data", ".venv")) for p in included)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS build",
            " AS build",
            "not pinned",
        ),
        ("--require-hashes ", "", "without --require-hashes"),
        ("USER 10001:10001", "USER app", "numeric non-root USER"),
        ("HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"),
        ("COPY deploy/__init__.py", "COPY deploy/__init__.py tests/", "not in the build context"),
    ],
)
def test_dockerfile_rules_catch(project: Path, old: str, new: str, expected: str) -> None:
    path = project / "deploy" / "Dockerfile"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert any(expected in p for p in dockerfile_problems(project))


def test_dockerignore_keeps_local_data_out(project: Path) -> None:
    (project / ".dockerignore").write_text("**/__pycache__\n")  # no allow-list
    problems = dockerfile_problems(project)
    assert any(".data/embedded.env" in p for p in problems)
    assert any(".venv/pyvenv.cfg" in p for p in problems)


# --- deploy/monitoring -------------------------------------------------------------------------


def test_monitoring_as_committed_passes() -> None:
    problems, rules = monitoring.check(ROOT)
    assert problems == []
    assert rules >= 4


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {
                "alert": "A",
                "expr": "kitakyushu_nonsense > 0",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "kitakyushu_nonsense is not a metric",
        ),
        (
            {
                "alert": "A",
                "expr": "max(kitakyushu_dlq_messages",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "not PromQL",
        ),
        (
            {"alert": "A", "expr": "kitakyushu_dlq_messages > 0", "annotations": {"summary": "s"}},
            "severity",
        ),
        (
            {"alert": "A", "expr": "kitakyushu_dlq_messages > 0", "labels": {"severity": "info"}},
            "no summary",
        ),
    ],
)
def test_monitoring_rules_catch(tmp_path: Path, rule: dict[str, Any], expected: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    problems = list(monitoring.check_alerts(path, monitoring.declared_series(ROOT)))
    assert any(expected in p for p in problems), problems
