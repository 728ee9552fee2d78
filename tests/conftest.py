from pathlib import Path

import pytest

# Measurement data (Kodak, BSDS500) lives outside the repository, in ../shared/data. A test that needs it
# says so with @pytest.mark.shared_data("kodak", ...): where a part is absent the test is skipped, with
# the reason in the summary (-ra), never silently and never with an import error.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data(*parts): needs ../shared/data/<part>; skipped when absent")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("shared_data"):
        missing = [part for part in mark.args if not (SHARED_DATA / part).exists()]
        if missing:
            pytest.skip(f"data-dependent: ../shared/data/{', '.join(missing)} not present")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder (pair with the shared_data mark, which skips when a part is absent)."""
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and oversubscribed cores make them crawl."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
