import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the local backend with the workers' thread count (1), restoring it after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
