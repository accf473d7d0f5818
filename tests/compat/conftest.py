"""The siblings environment (moto server, table, function) for the sosw compatibility tests."""

from __future__ import annotations

import pytest

from tests.conftest import Aws
from tests.integration.siblings.support import SiblingsEnv, build_env


@pytest.fixture
def env(aws: Aws) -> SiblingsEnv:
    """A clean server with the shared table and the function."""
    return build_env(aws.endpoint_url, aws.recorder)
