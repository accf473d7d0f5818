"""Fixtures of the integration tests on the shared moto server."""

from __future__ import annotations

import pytest

from estimator import ensure_table
from tests.conftest import Aws
from tests.helpers import local_config


@pytest.fixture
def table(aws: Aws) -> str:
    """The shared table on the server; counts start at zero afterwards."""
    ensure_table(local_config(aws.endpoint_url), aws.session)
    aws.recorder.reset()
    return "lambda-siblings"
