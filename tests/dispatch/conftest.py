import pytest

from tests.support.fake_services import FakeHelicone, FakeLunary


@pytest.fixture(scope="session")
def lunary_server():
    server = FakeLunary().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def helicone_server():
    server = FakeHelicone().start()
    yield server
    server.stop()


@pytest.fixture
def fake_lunary(lunary_server):
    lunary_server.reset()
    yield lunary_server
    lunary_server.reset()


@pytest.fixture
def fake_helicone(helicone_server):
    helicone_server.reset()
    yield helicone_server
    helicone_server.reset()
