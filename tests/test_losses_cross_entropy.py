"""The mean cross-entropy with its one-pass gradient (ssgraphrec/losses/cross_entropy.py)
against ``F.cross_entropy`` and against finite differences."""

import pytest
import torch
import torch.nn.functional as F

from ssgraphrec.losses import cross_entropy
from ssgraphrec.losses.contrastive import info_nce
from ssgraphrec.losses.cross_entropy import MeanCrossEntropy, mean_cross_entropy


def _logits(n: int, m: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, 16, generator=g, dtype=dtype), dim=1)
    b = F.normalize(torch.randn(m, 16, generator=g, dtype=dtype), dim=1)
    return (a @ b.t() / 0.2).requires_grad_()


def _loss_and_grad(fn, logits, target, upstream=1.0):
    logits.grad = None
    loss = fn(logits, target)
    (loss * upstream).backward()
    return loss.detach(), logits.grad.clone()


@pytest.mark.parametrize("n, m", [(1, 1), (7, 7), (33, 50), (300, 300)])
def test_loss_is_cross_entropys_to_the_bit_and_the_gradient_to_rounding(n, m):
    logits = _logits(n, m)
    target = torch.randint(0, m, (n,), generator=torch.Generator().manual_seed(1))
    ref_loss, ref_grad = _loss_and_grad(F.cross_entropy, logits, target, upstream=0.3)
    loss, grad = _loss_and_grad(MeanCrossEntropy.apply, logits, target, upstream=0.3)
    assert torch.equal(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad, rtol=2e-6, atol=1e-12)


def test_gradient_is_softmax_minus_the_target_over_n_by_finite_differences():
    logits = _logits(6, 9, dtype=torch.float64)
    target = torch.tensor([0, 8, 3, 3, 5, 1])
    assert torch.autograd.gradcheck(MeanCrossEntropy.apply, (logits, target))
    loss, grad = _loss_and_grad(MeanCrossEntropy.apply, logits, target, upstream=2.0)
    expected = torch.softmax(logits.detach(), 1)
    expected[torch.arange(6), target] -= 1
    torch.testing.assert_close(grad, 2.0 * expected / 6, rtol=1e-12, atol=1e-15)


def test_masked_logits_get_a_zero_gradient_as_in_cross_entropy():
    """NT-Xent masks each anchor's own column with -inf."""
    logits = _logits(5, 5)
    masked = logits.detach().clone()
    masked[torch.arange(5), torch.arange(5)] = float("-inf")
    masked.requires_grad_()
    target = torch.tensor([1, 2, 3, 4, 0])
    ref_loss, ref_grad = _loss_and_grad(F.cross_entropy, masked, target)
    loss, grad = _loss_and_grad(MeanCrossEntropy.apply, masked, target)
    assert torch.equal(loss, ref_loss)
    assert torch.equal(grad.diagonal(), torch.zeros(5)) and torch.isfinite(grad).all()
    torch.testing.assert_close(grad, ref_grad, rtol=2e-6, atol=1e-12)


def test_without_a_gradient_to_take_or_below_its_size_the_loss_is_left_to_cross_entropy(
        monkeypatch):
    """No gradient wanted (evaluation, ``no_grad``), fewer logits than
    ``ONE_PASS_MIN_LOGITS`` or a shape it does not take: the one-pass path is not
    entered, and the value is ``F.cross_entropy``'s."""
    def refuse(*args):
        raise AssertionError("MeanCrossEntropy entered")

    monkeypatch.setattr(MeanCrossEntropy, "apply", refuse)
    monkeypatch.setattr(cross_entropy, "ONE_PASS_MIN_LOGITS", 24)
    logits = _logits(4, 6)
    target = torch.tensor([0, 1, 2, 3])
    expected = F.cross_entropy(logits.detach(), target)
    assert torch.equal(mean_cross_entropy(logits.detach(), target), expected)
    with torch.no_grad():
        assert torch.equal(mean_cross_entropy(logits, target), expected)
    assert torch.equal(mean_cross_entropy(logits[:0], target[:0]).isnan(), torch.tensor(True))
    assert torch.equal(mean_cross_entropy(logits[:, :5], target).detach(),
                       F.cross_entropy(logits[:, :5].detach(), target))   # 20 < 24 logits
    with pytest.raises(AssertionError, match="entered"):
        mean_cross_entropy(logits, target)                                # 24 logits


def test_info_nce_takes_it_and_keeps_its_value_and_gradients(monkeypatch):
    monkeypatch.setattr(cross_entropy, "ONE_PASS_MIN_LOGITS", 40 * 40)
    g = torch.Generator().manual_seed(3)
    a = torch.randn(40, 8, generator=g, requires_grad=True)
    p = torch.randn(40, 8, generator=g, requires_grad=True)
    loss = info_nce(a, p, 0.2)
    assert type(loss.grad_fn).__name__ == "MeanCrossEntropyBackward"
    loss.backward()
    ga, gp = a.grad.clone(), p.grad.clone()
    a.grad = p.grad = None
    logits = F.normalize(a, dim=1) / 0.2 @ F.normalize(p, dim=1).t()
    ref = F.cross_entropy(logits, torch.arange(40))
    ref.backward()
    assert torch.equal(loss.detach(), ref.detach())
    torch.testing.assert_close(ga, a.grad, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(gp, p.grad, rtol=1e-5, atol=1e-8)


def test_the_studys_reference_path_runs_every_mean_cross_entropy_through_cross_entropy(
        monkeypatch):
    """``benchmarks/cross_entropy.py`` times the package before and after: its reference
    path must reach every module that calls ``mean_cross_entropy``."""
    monkeypatch.setattr(cross_entropy, "ONE_PASS_MIN_LOGITS", 1)
    import importlib
    import pathlib

    import ssgraphrec
    from ssgraphrec.bench.studies.cross_entropy import USERS, through_cross_entropy

    root = pathlib.Path(ssgraphrec.__file__).parent
    callers = {"ssgraphrec." + ".".join(path.relative_to(root).with_suffix("").parts)
               for path in root.rglob("*.py") if "mean_cross_entropy(" in path.read_text()}
    callers -= {"ssgraphrec.losses.cross_entropy", "ssgraphrec.bench.studies.cross_entropy"}
    assert callers == set(USERS)
    a, p = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    with through_cross_entropy():
        assert all(importlib.import_module(m).mean_cross_entropy is F.cross_entropy
                   for m in USERS)
        assert type(info_nce(a, p, 0.2).grad_fn).__name__ == "NllLossBackward0"
    assert all(importlib.import_module(m).mean_cross_entropy is mean_cross_entropy
               for m in USERS)
    assert type(info_nce(a, p, 0.2).grad_fn).__name__ == "MeanCrossEntropyBackward"
