"""Losses against closed forms at known logits."""

import math

import pytest
import torch

from ganbench.losses import LOSSES, gradient_penalty, mixing_weights

LN2 = math.log(2)
Z = torch.zeros(4)


@pytest.mark.parametrize("name, d_at_zero, g_at_zero", [
    ("ns", 2 * LN2, LN2),
    ("minimax", 2 * LN2, -LN2),
    ("lsgan", 0.5, 0.5),
    ("wgan-gp", 0.0, 0.0),
    ("hinge", 2.0, 0.0),
])
def test_losses_at_zero_logits(name, d_at_zero, g_at_zero):
    loss = LOSSES[name]
    assert loss.d(Z, Z).item() == pytest.approx(d_at_zero, abs=1e-7)
    assert loss.g(Z).item() == pytest.approx(g_at_zero, abs=1e-7)


def test_losses_at_separated_logits():
    r, f = torch.full((3,), 2.0), torch.full((3,), -1.0)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert LOSSES["ns"].d(r, f).item() == pytest.approx(sp(-2) + sp(-1), rel=1e-6)
    assert LOSSES["ns"].g(f).item() == pytest.approx(sp(1), rel=1e-6)
    assert LOSSES["minimax"].g(f).item() == pytest.approx(-sp(-1), rel=1e-6)
    assert LOSSES["lsgan"].d(r, f).item() == pytest.approx(0.5 * 1 + 0.5 * 1)
    assert LOSSES["lsgan"].g(f).item() == pytest.approx(0.5 * 4)
    assert LOSSES["wgan-gp"].d(r, f).item() == pytest.approx(-3.0)
    assert LOSSES["hinge"].d(r, f).item() == pytest.approx(0.0)  # both margins satisfied
    assert LOSSES["hinge"].d(f, r).item() == pytest.approx(2.0 + 3.0)
    assert LOSSES["hinge"].g(f).item() == pytest.approx(1.0)


def test_ns_and_minimax_are_stable_at_extreme_logits():
    big = torch.full((2,), 200.0)
    for name in ("ns", "minimax"):
        assert torch.isfinite(LOSSES[name].d(big, -big)) and torch.isfinite(LOSSES[name].g(-big))


def test_only_wgan_gp_has_a_penalty():
    assert [n for n, loss in LOSSES.items() if loss.penalty] == ["wgan-gp"]
    assert [n for n, loss in LOSSES.items() if loss.clip] == ["wgan"]


def test_gradient_penalty_closed_form_for_a_linear_critic():
    # D(x) = w.x has gradient w everywhere, so the penalty is exactly (|w| - 1)^2
    d = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[3.0, 4.0]]))
    critic = lambda x: d(x).squeeze(1)  # noqa: E731
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    gp = gradient_penalty(critic, real, fake, mixing_weights(16, real, torch.Generator().manual_seed(0)))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)
    gp.backward()  # differentiable with respect to the critic's weights
    assert d.weight.grad is not None and torch.isfinite(d.weight.grad).all()


def test_gradient_penalty_on_image_shaped_input():
    d = lambda x: x.flatten(1).sum(1)  # noqa: E731  gradient all ones: norm sqrt(12)
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    gp = gradient_penalty(d, real, fake, mixing_weights(5, real, torch.Generator().manual_seed(0)))
    assert gp.item() == pytest.approx((math.sqrt(12) - 1) ** 2, rel=1e-6)
