"""Shared fixtures of the unit tests."""

import pytest
from airbyte_cdk.test.mock_http import HttpMocker


@pytest.fixture
def http_mocker():
    """An HttpMocker for the test's duration; afterwards every mocked request must have been sent as often as mocked.

    The fixture form of HttpMocker's decorator, which pytest cannot combine with parametrize.
    """
    with HttpMocker() as mocker:
        yield mocker
        mocker._validate_all_matchers_called()
