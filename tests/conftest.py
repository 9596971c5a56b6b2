from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import Infra, start_infra


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Kafka, MongoDB and SMTP, started once for the whole session (see tests/infra.py)."""
    base: Path = tmp_path_factory.mktemp("embedded")
    infra = start_infra(base)
    try:
        yield infra
    finally:
        infra.stop()
