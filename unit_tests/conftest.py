"""Shared fixtures of the unit tests."""

import pytest
from airbyte_cdk.test.mock_http import HttpMocker


@pytest.fixture
def http_mocker():
    """An HttpMocker for the test's duration (the fixture form of its decorator, which pytest cannot combine with
    parametrize). Tests assert on records, states, traces and, with `assert_number_of_calls`, on requests sent."""
    with HttpMocker() as mocker:
        yield mocker
