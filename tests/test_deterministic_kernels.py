"""A CPU run turns on PyTorch's deterministic kernels (ssgraphrec.train.seed), so that
one seed, one setting and one thread count give the same bits with several threads."""

import pytest
import torch

from ssgraphrec.config import RunConfig
from ssgraphrec.train.run import build
from ssgraphrec.train.seed import deterministic_cpu_kernels


@pytest.fixture
def restore_modes():
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = fill


def test_a_cpu_run_turns_on_the_deterministic_kernels_without_the_nan_fill(restore_modes):
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = True
    build(RunConfig(method="lightgcn", dataset="synthetic", device="cpu", seed=1))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()   # warns, never fails
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_a_gather_backward_with_repeated_rows_repeats_its_bits_on_two_threads(restore_modes):
    """The backward pass of ``x[idx]`` with many repeated rows, on two threads: the same
    bits every time under the run's kernels (with PyTorch's default ones, its atomic adds
    from two threads gave sums up to 4.8e-7 apart on a 2-vCPU machine)."""
    deterministic_cpu_kernels()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, 500, (6_000,), generator=g)       # each row about 12 times
        upstream = torch.randn(6_000, 64, generator=g)
        table = torch.randn(500, 64, generator=g)

        def grad() -> torch.Tensor:
            x = table.clone().requires_grad_()
            x[idx].backward(upstream)
            return x.grad

        first = grad()
        assert all(torch.equal(grad(), first) for _ in range(20))
        assert torch.allclose(first, torch.zeros(500, 64).index_add_(0, idx, upstream), atol=1e-5)
    finally:
        torch.set_num_threads(threads)
