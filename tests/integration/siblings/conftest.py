"""Fixtures of the siblings integration tests (on the shared moto server)."""

from __future__ import annotations

import pytest

from tests.conftest import Aws
from tests.integration.siblings.support import SiblingsEnv, build_env


@pytest.fixture
def env(aws: Aws) -> SiblingsEnv:
    """The shared table, the ``worker`` function, Invoke capture; counts start at zero."""
    return build_env(aws.endpoint_url, aws.recorder)
