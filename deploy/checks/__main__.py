"""`make deploy-check`: every static check of the deployment files, offline.

    .venv/deploy-tools/bin/python -m deploy.checks --kubectl .venv/bin/kubectl-1.34.5

1. deploy/k8s: kustomize renders the base and every overlay; each object is validated against
   the Kubernetes schemas (kubernetes-validate, strict, oldest and newest supported version);
   the overlays meet the platform's rules (deploy/checks/k8s.py); in the base too, every
   service that writes links (portal, notifications) gets the same PUBLIC_BASE_URL.
2. checkov: the rendered overlays (kubernetes), deploy/Dockerfile (dockerfile), and deploy/
   plus docker-compose.yml for committed secrets (secrets). No failed check; any skip must be
   an inline annotation with its reason.
3. deploy/Dockerfile and .dockerignore: pinned base, hash-checked install, OCI labels,
   HEALTHCHECK, non-root; the build context as Docker computes it.
4. docker-compose.yml: the Compose Specification's schema, and the platform's rules.
5. deploy/monitoring: the alert rules and the dashboard are well formed and name only metrics
   the services declare (deploy/checks/monitoring.py).
Exit status 1 if anything fails; each problem is printed on one line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.checks import compose, dockerfile, k8s, monitoring

ROOT = Path(__file__).resolve().parents[2]


def checkov(*arguments: str) -> tuple[bool, str]:
    """Run checkov offline (no platform API, no downloads); True when nothing failed."""
    command = [
        str(Path(sys.executable).with_name("checkov")),
        *arguments,
        "--skip-download",
        "--compact",
        "--quiet",
        "--output",
        "cli",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def section(title: str, problems: list[str], summary: str) -> bool:
    if problems:
        print(f"FAIL  {title}")
        for problem in problems:
            print(f"      - {problem}")
        return False
    print(f"ok    {title}: {summary}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.checks")
    parser.add_argument("--kubectl", type=Path, required=True, help="kubectl with kustomize")
    args = parser.parse_args(argv)
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        workdir = Path(tmp)
        renderings = k8s.render_all(ROOT / "deploy" / "k8s", args.kubectl.resolve(), workdir)
        for rendering in renderings:
            kinds = sorted({o["kind"] for o in rendering.objects})
            problems = k8s.validate_schemas(rendering)
            problems += k8s.link_rules(rendering) if not rendering.deployable else []
            ok &= section(
                f"kustomize + kubernetes-validate {rendering.name}",
                problems,
                f"{len(rendering.objects)} objects valid for Kubernetes "
                f"{' and '.join(k8s.KUBERNETES_VERSIONS)} ({', '.join(kinds)})",
            )
        deployable = [r for r in renderings if r.deployable]
        for rendering in deployable:
            deployments = len(k8s.of_kind(rendering.objects, "Deployment"))
            ok &= section(
                f"platform rules {rendering.name}",
                k8s.check_rules(rendering),
                f"{deployments} Deployments hardened, probed, bounded, with PDB, "
                "NetworkPolicy, ServiceAccount; Ingress on TLS, FORWARDED_ALLOW_IPS behind it; "
                "PUBLIC_BASE_URL for every service that writes links",
            )

        files = [arg for r in deployable for arg in ("--file", str(r.path))]
        passed, output = checkov(
            *files, "--file", "deploy/Dockerfile", "--framework", "kubernetes", "dockerfile"
        )
        ok &= section(
            "checkov kubernetes + dockerfile",
            [] if passed else output.splitlines(),
            " ".join(line.strip() for line in output.splitlines() if "checks:" in line),
        )
        passed, output = checkov(
            "--directory", "deploy", "--file", "docker-compose.yml", "--framework", "secrets"
        )
        ok &= section(
            "checkov secrets (deploy/, docker-compose.yml)",
            [] if passed else output.splitlines(),
            "no secret committed",
        )

    image = ROOT / "deploy" / "Dockerfile"
    ok &= section(
        "deploy/Dockerfile + .dockerignore",
        list(dockerfile.check(ROOT, image)),
        "multi-stage, pinned base, hash-checked install, OCI labels, HEALTHCHECK, non-root; "
        f"{len(dockerfile.context_files(ROOT, image))} files in the context, none forbidden",
    )
    problems, document = compose.check(ROOT / "docker-compose.yml")
    ok &= section(
        "docker-compose.yml",
        problems,
        f"valid against the Compose Specification; {len(document.get('services', {}))} "
        "services, one image built once, health-gated start, ports on 127.0.0.1",
    )
    problems, rules = monitoring.check(ROOT)
    ok &= section(
        "deploy/monitoring",
        problems,
        f"{rules} alert rules and the Grafana dashboard name only metrics the services declare",
    )
    print(f"deploy-check {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
