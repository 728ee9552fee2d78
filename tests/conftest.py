import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and oversubscribed cores make them crawl."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
