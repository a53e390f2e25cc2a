import platform
import sys

import pytest
import torch

from learnlab.runtime import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_allocator_keeps_freed_memory_and_numbers_do_not_change():
    torch.manual_seed(0)
    x = torch.randn(64, 4096)
    before = (x @ x.T).relu().sum()
    assert keep_freed_memory() is True
    torch.manual_seed(0)
    x = torch.randn(64, 4096)
    assert torch.equal((x @ x.T).relu().sum(), before)
