"""ganbench.flops.CountFlops: PyTorch's per-operator FLOP formulas over a block, including
torch.autograd.grad on a leaf with create_graph (a gradient penalty), which FlopCounterMode refuses."""

import pytest
import torch

from ganbench.flops import CountFlops


def test_counts_a_product_forward_and_both_gradients():
    B, n_in, n_out = 5, 3, 4
    x = torch.randn(B, n_in, requires_grad=True)
    w = torch.randn(n_in, n_out, requires_grad=True)
    with CountFlops() as c:
        (x @ w).sum().backward()
    # forward, gradient to x, gradient to w: each B * n_in * n_out multiply-adds
    assert c.total == 3 * 2 * B * n_in * n_out
    assert [name for name, _ in c.calls] == ["aten.mm"] * 3


def test_counts_a_double_backward_through_a_leaf():
    """The gradient penalty's pattern: grad of D at a leaf with create_graph, then backward."""
    B, n = 8, 6
    lin = torch.nn.Linear(n, 1, bias=False)
    x = torch.randn(B, n, requires_grad=True)
    with CountFlops() as c:
        (grad,) = torch.autograd.grad(lin(x).sum(), x, create_graph=True)
        (grad.norm(dim=1) - 1).pow(2).mean().backward()
    # forward B x n x 1; gradient to x; and the backward of that gradient to the weight
    assert c.total == 3 * 2 * B * n
    with pytest.raises(RuntimeError, match="leaf"):  # why CountFlops exists
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False):
            torch.autograd.grad(lin(x).sum(), x, create_graph=True)
