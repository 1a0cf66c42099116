"""Counting the arithmetic of a block of PyTorch code: the floating-point operations of every matrix
product and convolution it dispatches, by PyTorch's own per-operator formulas
(``torch.utils.flop_counter.flop_registry``).

``FlopCounterMode`` does the same but tracks modules with hooks that refuse ``torch.autograd.grad``
on a leaf tensor (a gradient penalty's interpolates), so training steps are counted here instead.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry


def _shape(x):
    return x.shape if isinstance(x, torch.Tensor) else x


class CountFlops(TorchDispatchMode):
    """``with CountFlops() as c: ...``; then ``c.total`` is the FLOPs (a multiply-add counts 2) and
    ``c.calls`` the (operator, input shapes) of each counted product, in order."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.calls: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            shapes = tree_map(_shape, args)
            self.total += count(*shapes, **kwargs, out_val=tree_map(_shape, out))
            self.calls.append((str(func._overloadpacket), tuple(s for s in shapes if isinstance(s, torch.Size))))
        return out


def step_products(cfg, dataset, device: torch.device) -> CountFlops:
    """The products of one training step of ``cfg`` (the second step of a run: the first has no
    optimiser state yet): ``total`` and ``calls`` of a 2-step run less those of a 1-step run."""
    from ganbench.train import train  # local: counting a block of code needs no training stack

    with CountFlops() as one:
        train(cfg.replace(steps=1), dataset, device)
    with CountFlops() as two:
        train(cfg.replace(steps=2), dataset, device)
    two.total -= one.total
    two.calls = two.calls[len(one.calls):]
    return two
