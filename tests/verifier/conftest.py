import pytest

from tests.quality.planted import planted_backward
from tests.verifier.sample_reports import verify_sample


@pytest.fixture(scope="module")
def passing():
    """The sample network's report with the reference backward: everything agrees."""
    return verify_sample()


@pytest.fixture(scope="module")
def failing():
    """The sample network's report with a skip connection overwritten at unit 1."""
    return verify_sample(planted_backward("skip-overwritten", 1))
