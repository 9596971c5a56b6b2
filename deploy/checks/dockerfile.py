"""deploy/Dockerfile and .dockerignore: the rules checkov does not cover.

The build context is computed the way Docker computes it (docker-py's implementation of the
.dockerignore rules), so the check sees exactly what a build would send to the daemon.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from docker.utils.build import exclude_paths

# Never in the build context: the local venv, `make run`'s data (a JWT secret and a mailbox of
# personal data), git, tests, and the deploy files that are no part of the image.
FORBIDDEN = (".venv/", ".data/", ".git/", "tests/", "deploy/k8s/", "deploy/embedded/", ".env")
_PINNED_BASE = re.compile(r"^[\w./-]+:\d[\w.-]*@sha256:[0-9a-f]{64}$")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    result = []
    for text in joined:
        keyword, _, arguments = text.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def context_files(root: Path, dockerfile: Path) -> set[str]:
    ignore = root / ".dockerignore"
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return set(exclude_paths(str(root), patterns, dockerfile=str(dockerfile.relative_to(root))))


def check(root: Path, dockerfile: Path) -> Iterator[str]:
    steps = instructions(dockerfile)
    stages = [args for keyword, args in steps if keyword == "FROM"]
    if len(stages) < 2:
        yield "not a multi-stage build"
    for stage in stages:
        image = stage.split()[0]
        if not _PINNED_BASE.match(image):
            yield f"base image {image} is not pinned by version and digest"
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [args for keyword, args in final if keyword == "USER"]
    if not users or not users[-1].split(":")[0].isdigit() or users[-1].startswith("0"):
        yield "the final stage does not run as a numeric non-root USER"
    if not any(keyword == "HEALTHCHECK" for keyword, _ in final):
        yield "no HEALTHCHECK"
    labels = " ".join(args for keyword, args in final if keyword == "LABEL")
    for label in ("title", "version", "revision", "created", "base.digest"):
        if f"org.opencontainers.image.{label}=" not in labels:
            yield f"no OCI label org.opencontainers.image.{label}"
    for keyword, args in steps:
        if keyword == "RUN" and "pip install" in args and "--require-hashes" not in args:
            yield f"pip install without --require-hashes: {args}"

    included = context_files(root, dockerfile)
    for path in sorted(included):
        if any(path.startswith(f) or f"/{f}" in f"/{path}" for f in FORBIDDEN):
            yield f"the build context contains {path}"
    for keyword, args in steps:
        if keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            source = source.rstrip("/")
            if not any(p == source or p.startswith(source + "/") for p in included):
                yield f"{keyword} {source}: not in the build context"
