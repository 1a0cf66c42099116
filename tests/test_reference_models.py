"""The reference parts of the published 2-D and Stacked MNIST protocols, at tiny width: MLP
activation, orthogonal initialisation, generator batch norm, maxout, PacGAN packing, the
Unrolled-GAN step, and the TensorFlow details of PacGAN's Stacked MNIST code. Each: its defining property, determinism, and exact resume."""

import copy

import pytest
import torch
from scipy.stats import truncnorm
from test_checkpoint import Stop, _state, _stop_at
from tf_same import SameConv2d, SameConvTranspose2d, literal, same_padding
from torch import nn

from ganbench.checkpoint import Checkpointer
from ganbench.config import RunConfig, single_setting_suite
from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.losses import LOSSES
from ganbench.evaluate import generate
from ganbench.models.blocks import Packed, weight_layer
from ganbench.models.mlp import Maxout, StdevBatchNorm1d
from ganbench.runs.suite import validate_suite
from ganbench.seeding import derive_seed, make_generator
from ganbench.steps.unrolled import lookahead, unrolled_generator_loss
import ganbench.train as train_module
from ganbench.train import build_models, train

CPU = torch.device("cpu")
PAPER = dict(activation="tanh", init="orthogonal", init_gain=1.4, z_dim=8, width=16, depth=2, batch_size=32)
VARIANTS = {
    "unrolled": dict(PAPER, unroll_steps=3, loss="minimax"),
    "unrolled-simultaneous": dict(PAPER, unroll_steps=2, loss="minimax", update="simultaneous"),
    "simultaneous": dict(PAPER, update="simultaneous"),
    "pacgan": dict(width=16, depth=3, d_width=8, d_depth=2, maxout=3, g_batch_norm=True, pack=2, batch_size=32),
    "tanh-orthogonal": PAPER,
    "same-latents": dict(PAPER, update="alternating-same-latents"),
    "small-dcgan": dict(model="small-dcgan", dataset="digits", z_dim=8, width=2, d_width=2, pack=2, batch_size=16,
                        update="alternating-same-latents", eval_bn_batch=8),
}


def _train(cfg, **kw):
    return train(cfg, DATASETS[cfg.dataset](cfg), CPU, **kw)


def _equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_orthogonal_init_gives_scaled_orthonormal_rows_and_zero_biases():
    g, d = build_models(RunConfig(**PAPER), DATASETS["ring8"](), CPU)
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, nn.Linear):
                w = m.weight.detach().double()
                small = min(w.shape)
                gram = w @ w.T if w.shape[0] == small else w.T @ w  # (small, small)
                assert torch.allclose(gram, 1.4**2 * torch.eye(small, dtype=torch.float64), atol=1e-5)
                assert torch.count_nonzero(m.bias) == 0
    assert sum(isinstance(m, nn.Tanh) for m in g.modules()) == 2  # unbounded 2-D output: no final tanh
    assert sum(isinstance(m, nn.Tanh) for m in d.modules()) == 2


def test_default_mlp_is_unchanged_by_the_new_fields():
    """Run ids and weights of configs recorded before the fields existed stay the same."""
    cfg = RunConfig(width=16, depth=2)
    assert "activation" not in cfg.identity() and "unroll_steps" not in cfg.identity()
    g, d = build_models(cfg, DATASETS["ring8"](), CPU)
    assert [type(m).__name__ for m in g.net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in d.net] == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]


def test_maxout_takes_the_largest_piece_of_each_unit():
    x = torch.tensor([[1.0, 5.0, -2.0, 0.0, 3.0, 4.0], [2.0, 2.0, 1.0, 7.0, 0.0, 7.0]], requires_grad=True)
    out = Maxout(3)(x)
    assert torch.equal(out, torch.tensor([[5.0, 4.0], [2.0, 7.0]]))
    (grad,) = torch.autograd.grad(out, x, torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    # each unit's gradient reaches its largest piece only; of two equal pieces, the first
    assert torch.equal(grad, torch.tensor([[0.0, 10.0, 0.0, 0.0, 0.0, 20.0], [30.0, 0.0, 0.0, 40.0, 0.0, 0.0]]))
    cfg = RunConfig(**VARIANTS["pacgan"])
    _, d = build_models(cfg, DATASETS["ring8"](), CPU)
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 24), (8, 24), (8, 1)]  # pack 2: 2 x 2 inputs


def test_generator_batch_norm_normalises_each_hidden_layer():
    g, _ = build_models(RunConfig(**VARIANTS["pacgan"]), DATASETS["ring8"](), CPU)
    norms = [m for m in g.modules() if isinstance(m, StdevBatchNorm1d)]
    assert len(norms) == 3
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, True, True, False]  # as PacGAN's decoder: bias on the output only
    seen = []
    norms[0].register_forward_hook(lambda m, i, o: seen.append((i[0].detach(), o.detach())))
    g(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))
    x, y = seen[0]
    v = x.double().var(0, unbiased=False)
    assert torch.allclose(y.mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(y.double().var(0, unbiased=False), v / (v + 1e-4), rtol=1e-4)  # eps 1e-4, not PyTorch's 1e-5
    assert v.min() < 0.01  # (a unit where 1e-4 and 1e-5 differ by over 1e-4 relative)


def test_stdev_batch_norm_computes_as_blocks():
    """Blocks' batch norm (PacGAN's code): eps 1e-4 inside the root of the biased variance; population
    mean and standard deviation averaged as p <- 0.95 p + 0.05 batch, and used as they are at evaluation."""
    bn = StdevBatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    # column 0's variance (1e-4) is eps's size; offsets stay small beside the spreads, so float32's
    # rounding of x - mean (about 6e-8 of the offset) stays far below the tolerance after division
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.01, 1.0, 5.0]) \
        + torch.tensor([0.05, 2.0, -3.0])
    xd = x.double()
    mean, var = xd.mean(0), xd.var(0, unbiased=False)
    std = (var + 1e-4).sqrt()
    expected = (xd - mean) / std * bn.weight.double() + bn.bias.double()
    assert torch.allclose(bn(x).double(), expected, atol=1e-5)
    assert torch.allclose(bn.running_mean.double(), 0.05 * mean, atol=1e-6)
    assert torch.allclose(bn.running_std.double(), 0.95 + 0.05 * std, atol=1e-6)  # from 1, its initial value
    bn.eval()
    y = torch.tensor([[2.0, 2.5, -1.0]])
    rm, rs = bn.running_mean.double(), bn.running_std.double()
    assert torch.allclose(bn(y).double(), (y.double() - rm) / rs * bn.weight.double() + bn.bias.double(), atol=1e-5)
    assert torch.equal(bn.running_mean.double(), rm)  # evaluation leaves the statistics alone


def test_bn_refresh_renews_the_statistics_at_the_evaluated_weights_and_leaves_training_alone():
    """PacGAN's code renews G's population statistics before each evaluation; the refresh runs G on a
    noise stream of its own, so the weights (and D) are those of a run without it, bit for bit, with
    refreshes at intermediate evaluations as well as at the end."""
    cfg = RunConfig(**VARIANTS["pacgan"], steps=20)  # batch 32 in 2 pack slots of 16
    params = lambda net: dict(net.named_parameters())  # noqa: E731
    quiet = dict(on_eval=lambda step, g: None)
    for every in (5, 0):  # refreshes at steps 5, 10, 15 and 20; at step 20 only
        plain = _train(cfg.replace(eval_every=every), **quiet)
        refreshed = _train(cfg.replace(eval_every=every, bn_refresh=40), **quiet)
        assert all(torch.equal(p, params(refreshed.generator)[k]) for k, p in params(plain.generator).items())
        assert _equal(plain.discriminator, refreshed.discriminator)
    # The first hidden layer sees W z alone, so its statistics can be replayed: 40 batches of the
    # refresh stream, each split into 2 slots of 16, each slot's biased variance + 1e-4 under the root,
    # mean and standard deviation averaged as p <- 0.95 p + 0.05 slot, from the statistics training left.
    first = [m for m in plain.generator.modules() if isinstance(m, nn.Linear)][0].weight.detach().double()
    stale = [m for m in plain.generator.modules() if isinstance(m, StdevBatchNorm1d)][0]
    mean, std = stale.running_mean.double(), stale.running_std.double()
    noise = torch.Generator().manual_seed((derive_seed(cfg.seed, "bn_refresh") + cfg.steps) % 2**63)
    for _ in range(40):
        for slot in torch.randn(32, 2, generator=noise).double().chunk(2):
            h = slot @ first.T
            mean = 0.95 * mean + 0.05 * h.mean(0)
            std = 0.95 * std + 0.05 * (h.var(0, unbiased=False) + 1e-4).sqrt()
    norm = [m for m in refreshed.generator.modules() if isinstance(m, StdevBatchNorm1d)][0]
    assert torch.allclose(norm.running_mean.double(), mean, rtol=1e-4, atol=1e-6)
    assert torch.allclose(norm.running_std.double(), std, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(stale.running_std.double(), std, rtol=0.05)  # training's 20 steps had not got there


def test_bn_refresh_before_intermediate_evaluations_resumes_exactly(tmp_path):
    cfg = RunConfig(**VARIANTS["pacgan"], steps=20, eval_every=5, bn_refresh=3)
    seen = {}
    record = lambda tag: lambda step, g: seen.setdefault(tag, []).append(  # noqa: E731
        (step, torch.cat([m.running_std.clone() for m in g.modules() if isinstance(m, StdevBatchNorm1d)])))
    whole = _train(cfg, on_eval=record("whole"))
    with pytest.raises(Stop):
        _train(cfg, checkpoint=Checkpointer(tmp_path, every=5), on_step=_stop_at(13), on_eval=record("cut"))
    resumed = _train(cfg, checkpoint=Checkpointer(tmp_path, every=5), on_eval=record("resumed"))
    assert _equal(whole.generator, resumed.generator)  # buffers included
    assert [s for s, _ in seen["whole"]] == [5, 10, 15]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(seen["whole"], seen["cut"] + seen["resumed"]))
    assert not torch.equal(seen["whole"][0][1], seen["whole"][1][1])


def test_packed_generator_runs_once_per_slot_and_packs_the_slots_ith_samples(monkeypatch):
    """PacGAN's code calls G once per pack slot (each slot normalised by its own batch statistics)
    and packs the i-th sample of every slot."""
    cfg = RunConfig(**VARIANTS["pacgan"], steps=1)  # batch 32, pack 2
    g, d = build_models(cfg, DATASETS["ring8"](), CPU)
    monkeypatch.setattr(train_module, "build_models", lambda *args: (g, d))
    outputs, d_inputs = [], []
    g.register_forward_hook(lambda m, i, o: outputs.append(o.detach()))
    d.inner.net[0].register_forward_hook(lambda m, i, o: d_inputs.append(i[0].detach()))
    _train(cfg)
    step_outputs = outputs[-4:]  # after the loop's output check: D's step and G's step
    assert [len(o) for o in step_outputs] == [16, 16, 16, 16]  # two slots of 16 each, one batch-norm batch each
    real, fake = d_inputs[-3], d_inputs[-2]  # D's step: the real packs, then the generated ones
    assert real.shape == fake.shape == (16, 4)
    assert torch.equal(fake, torch.cat(step_outputs[:2], dim=1))  # pack i = (slot 0's i-th, slot 1's i-th)


def test_packed_discriminator_sees_pack_samples_per_input():
    inner_inputs = []
    inner = nn.Linear(6, 1)
    inner.register_forward_hook(lambda m, i, o: inner_inputs.append(i[0]))
    d = Packed(nn.Sequential(inner, nn.Flatten(0)), 3)
    x = torch.arange(12 * 2, dtype=torch.float32).view(12, 2)
    assert d(x).shape == (4,)
    assert torch.equal(inner_inputs[0][1], torch.cat([x[3], x[4], x[5]]))  # pack i holds samples 3i..3i+2
    images = torch.randn(4, 3, 8, 8)
    captured = []
    conv = nn.Conv2d(6, 1, 8)
    conv.register_forward_hook(lambda m, i, o: captured.append(i[0]))
    Packed(nn.Sequential(conv, nn.Flatten(0)), 2)(images)
    assert torch.equal(captured[0][1], torch.cat([images[2], images[3]]))  # channels of two images
    with pytest.raises(ValueError, match="packs of 3"):
        d(x[:10])


def test_packed_dcgan_judges_packs_of_images():
    cfg = RunConfig(model="dcgan", dataset="digits", width=8, d_width=4, pack=2, z_dim=8, batch_size=8)
    g, d = build_models(cfg, DATASETS["digits"](cfg), CPU)
    x = g(torch.randn(8, 8))
    assert d(x).shape == (4,)
    assert d.inner.features[0].in_channels == 2 * x.shape[1] and d.inner.features[0].out_channels == 4


def test_lookahead_equals_k_real_adam_steps_and_leaves_d_alone():
    """The differentiable look-ahead is D's own Adam update, k times, on the same batch."""
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    opt = torch.optim.Adam(d.parameters(), lr=1e-2, betas=(0.5, 0.999))
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    loss = LOSSES["ns"]
    for _ in range(2):  # some optimiser state to start from
        opt.zero_grad()
        loss.d(d(real), d(fake)).backward()
        opt.step()
    before = copy.deepcopy(d.state_dict())
    params = lookahead(d, opt, lambda p: loss.d(torch.func.functional_call(d, p, (real,)),
                                                torch.func.functional_call(d, p, (fake,))), 3)
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    twin = copy.deepcopy(d)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2, betas=(0.5, 0.999))
    twin_opt.load_state_dict(opt.state_dict())
    for _ in range(3):
        twin_opt.zero_grad()
        loss.d(twin(real), twin(fake)).backward()
        twin_opt.step()
    for name, p in twin.named_parameters():
        assert torch.allclose(params[name], p, rtol=1e-5, atol=1e-6), name


def _tiny_pair():
    """A linear G (3 -> 2), a tanh D with fresh Adam state, a real batch and latents, all seeded."""
    torch.manual_seed(0)
    g = nn.Linear(3, 2)
    d = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    return g, d, torch.optim.Adam(d.parameters(), lr=1e-2), torch.randn(16, 2), torch.randn(16, 3)


def test_unrolled_gradient_goes_through_the_lookahead_updates():
    """G's gradient includes the second-order path (how D's updates depend on G): it differs from
    the gradient at the same unrolled D taken as fixed weights."""
    g, d, opt, real, z = _tiny_pair()
    loss = LOSSES["ns"]
    (through,) = torch.autograd.grad(unrolled_generator_loss(d, opt, loss, 3, real, None, g(z), None), g.weight)
    call = lambda p, x: torch.func.functional_call(d, p, (x,))  # noqa: E731
    fake = g(z)
    fixed = {k: v.detach() for k, v in lookahead(d, opt, lambda p: loss.d(call(p, real), call(p, fake)), 3).items()}
    (first_order,) = torch.autograd.grad(loss.g(call(fixed, g(z))), g.weight)
    assert torch.isfinite(through).all() and not torch.allclose(through, first_order, rtol=1e-3, atol=1e-7)
    # no look-ahead: the plain generator loss, value and gradient
    plain = loss.g(d(g(z)))
    assert unrolled_generator_loss(d, opt, loss, 0, real, None, g(z), None).item() == pytest.approx(plain.item(), rel=1e-6)


def test_unroll_steps_zero_never_enters_the_lookahead(monkeypatch):
    from ganbench.steps import step_name, unrolled

    def fail(*args, **kwargs):
        raise AssertionError("the look-ahead ran with unroll_steps = 0")

    monkeypatch.setattr(unrolled, "unrolled_generator_loss", fail)
    assert step_name(RunConfig(**PAPER)) == PAPER.get("update", "alternating")
    assert step_name(RunConfig(**PAPER, unroll_steps=1)) == "unrolled"
    cfg = RunConfig(**PAPER, steps=5)
    assert cfg.replace(unroll_steps=0).run_id == RunConfig(**{k: v for k, v in PAPER.items()}, steps=5).run_id
    assert _train(cfg).steps_done == 5
    with pytest.raises(AssertionError, match="look-ahead ran"):
        _train(cfg.replace(unroll_steps=1, loss="minimax"))


@pytest.mark.parametrize("extra", [dict(maxout=3), dict(activation="relu")])
def test_lookahead_stays_finite_when_a_weight_has_had_no_gradient(extra):
    """Dead ReLU units and maxout pieces that never win leave Adam's second moment at 0, where
    sqrt's derivative is infinite; the look-ahead must not turn that into NaN gradients."""
    cfg = RunConfig(width=16, depth=2, batch_size=32, unroll_steps=2, loss="minimax", steps=15, **extra)
    result = _train(cfg)
    assert result.diverged is None and result.steps_done == 15
    assert all(torch.isfinite(p).all() for p in result.generator.parameters())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_is_deterministic_and_resumes_exactly(variant, tmp_path):
    cfg = RunConfig(**VARIANTS[variant], steps=20)
    whole = _train(cfg)
    again = _train(cfg)
    assert _equal(whole.generator, again.generator) and _equal(whole.discriminator, again.discriminator)
    assert whole.diverged is None
    with pytest.raises(Stop):
        _train(cfg, checkpoint=Checkpointer(tmp_path, every=5), on_step=_stop_at(13))
    torch.manual_seed(7)
    resumed = _train(cfg, checkpoint=Checkpointer(tmp_path, every=5))
    assert _equal(whole.generator, resumed.generator) and _equal(whole.discriminator, resumed.discriminator)


@pytest.mark.parametrize("values, message", [
    (dict(unroll_steps=2, loss="wgan-gp"), "penalty or clipping"),
    (dict(unroll_steps=2, optimizer="rmsprop"), "optimizer adam"),
    (dict(unroll_steps=2, spectral_norm=True), "spectral norm"),
    (dict(model="sngan", dataset="digits", loss="minimax", unroll_steps=2, batch_size=16, width=8), "parametrized"),
    (dict(init_gain=2.0), "'init_gain' .* is read by init 'orthogonal' or 'normal'"),
    (dict(update="simultaneous", n_dis=2), "one discriminator step per generator step"),
    (dict(update="sometimes"), "unknown update"),
    (dict(pack=2, loss="wgan-gp"), "gradient penalty is not defined on packs"),
    (dict(pack=3), "multiple of pack"),
    (dict(maxout=1), "at least 2 pieces"),
    (dict(bn_refresh=50), "'bn_refresh' .* the 'mlp' generator has no batch norm"),
    (dict(bn_refresh=-1), "bn_refresh"),
    (dict(activation="sigmoid"), "unknown activation"),
    (dict(init="xavier"), "unknown initialisation"),
    (dict(model="sngan", dataset="digits", pack=2, batch_size=64), "has no option 'pack'"),
    (dict(model="dcgan", dataset="digits", maxout=2), "has no option 'maxout'"),
    (dict(model="cdcgan", dataset="digits", d_width=16), "has no option 'd_width'"),
    (dict(step="alternatng"), "unknown training step 'alternatng'; did you mean 'alternating'"),
    (dict(step="alternating", update="simultaneous"), "step 'alternating' with update 'simultaneous'"),
    (dict(step="simultaneous", update="simultaneous", unroll_steps=2), "the look-ahead is step 'unrolled'"),
    (dict(step="unrolled"), "step 'unrolled' needs unroll_steps >= 1"),
])
def test_unsupported_combinations_are_refused_before_training(values, message):
    with pytest.raises(UserError, match=message):
        validate_suite(single_setting_suite({"steps": 1, **values}, [0]))


def test_zero_sum_unrolled_objective_counts_the_real_term_through_the_lookahead():
    """Metz et al.'s f_K = f(θ_G, θ_D^K): for the minimax loss the real term depends on G via θ_D^K."""
    g, d, opt, real, z = _tiny_pair()
    loss = LOSSES["minimax"]
    full = unrolled_generator_loss(d, opt, loss, 2, real, None, g(z), None)
    (grad_full,) = torch.autograd.grad(full, g.weight)
    call = lambda p, x: torch.func.functional_call(d, p, (x,))  # noqa: E731
    fake = g(z)
    params = lookahead(d, opt, lambda p: loss.d(call(p, real), call(p, fake)), 2)
    assert full.item() == pytest.approx(-loss.d(call(params, real), call(params, fake)).item(), rel=1e-6)
    (grad_fake_only,) = torch.autograd.grad(loss.g(call(params, fake)), g.weight)
    assert not torch.allclose(grad_full, grad_fake_only)


def test_a_plugin_step_runs_through_the_same_loop(tmp_path):
    """A training step registered by a plug-in and chosen with ``step``: here the standard step under
    another name, which must train exactly as the built-in one (same weights, same history)."""
    from ganbench.plugins import load_plugin

    plugin = tmp_path / "my_step.py"
    plugin.write_text(
        "from ganbench.steps import Step, register\n"
        "from ganbench.steps.alternating import adversarial_step\n"
        "register(Step(name='my-alternating', description='the standard step, renamed',\n"
        "              run=lambda ctx, log: adversarial_step(ctx, log, simultaneous=False)))\n")
    from ganbench.steps import STEPS

    load_plugin(str(plugin))
    cfg = RunConfig(**PAPER, steps=12, n_dis=2)
    try:
        mine, builtin = _train(cfg.replace(step="my-alternating")), _train(cfg)
    finally:
        dict.pop(STEPS, "my-alternating")
    assert mine.history and [r["d_loss"] for r in mine.history] == [r["d_loss"] for r in builtin.history]
    for a, b in zip(mine.generator.state_dict().values(), builtin.generator.state_dict().values()):
        assert torch.equal(a, b)
    assert cfg.replace(step="my-alternating").run_id != cfg.run_id  # a chosen step is part of the run's identity


# ----------------------------------------------------------------------------------------------
# PacGAN's Stacked MNIST code (TensorFlow): SAME padding, truncated-normal convs, the G step on D's
# latents, sampling with batch statistics


def test_same_padding_puts_the_odd_zero_after_as_tensorflow():
    # (size, kernel, stride) -> (before, after): out = ceil(size / stride)
    assert [same_padding(*a) for a in ((28, 3, 2), (14, 3, 2), (7, 3, 2), (28, 3, 1), (4, 3, 2))] == \
        [(0, 1), (0, 1), (1, 1), (1, 1), (0, 1)]
    x = torch.randn(2, 1, 28, 28)
    for size, tap, want in ((28, 0, x[:, :, 0::2, 0::2]), (14, 0, x[:, :, 0:14:2, 0:14:2]),
                            (7, 1, x[:, :, 0:7:2, 0:7:2])):
        conv = SameConv2d(1, 1, 3, 2, size)
        with torch.no_grad():  # a kernel that copies one tap: which input pixel each output reads
            conv.weight.zero_()
            conv.weight[0, 0, tap, tap] = 1.0
            conv.bias.zero_()
            got = conv(x[:, :, :size, :size])
        # output (i, j) reads padded (2i + tap, 2j + tap) = input (2i, 2j): no zero before an even side
        assert got.shape[-1] == -(-size // 2) and torch.equal(got, want)
    torch_padded = nn.Conv2d(1, 1, 3, 2, 1, bias=False)
    with torch.no_grad():
        torch_padded.weight.zero_()
        torch_padded.weight[0, 0, 0, 0] = 1.0
    assert torch.equal(torch_padded(x)[:, :, 1:, 1:], x[:, :, 1:27:2, 1:27:2])  # PyTorch's reads one pixel earlier


@pytest.mark.parametrize("size", [7, 14, 28])
def test_same_conv_transpose_is_the_adjoint_of_same_conv(size):
    """TensorFlow's conv2d_transpose is the gradient of its conv2d: <conv(x), y> = <x, conv_t(y)>."""
    torch.manual_seed(size)
    up = SameConvTranspose2d(5, 3, 3, 2, size)
    down = SameConv2d(3, 5, 3, 2, size)
    with torch.no_grad():
        down.weight.copy_(up.weight)  # (5, 3, 3, 3) both: conv from 3 to 5 channels, its transpose back
        down.bias.zero_()
        up.bias.zero_()
        x = torch.randn(2, 3, size, size, dtype=torch.float64)
        y = torch.randn(2, 5, -(-size // 2), -(-size // 2), dtype=torch.float64)
        lhs = (down.double()(x) * y).sum()
        rhs = (x * up.double()(y)).sum()
    assert up(y).shape == (2, 3, size, size)
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


def test_truncated_normal_weights_stay_within_two_sigma_with_the_truncated_spread():
    torch.manual_seed(0)
    w = weight_layer(nn.Conv2d(64, 64, 3), truncated=True).weight.detach().double()
    assert w.abs().max() <= 0.04 and w.abs().max() > 0.039
    # the standard deviation of N(0, 1) cut to [-2, 2]: sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))) = 0.8796
    assert w.std().item() == pytest.approx(0.02 * truncnorm(-2, 2).std(), rel=0.02)  # 36,864 weights
    plain = weight_layer(nn.Conv2d(64, 64, 3)).weight.detach()
    assert plain.abs().max() > 0.06 and plain.std().item() == pytest.approx(0.02, rel=0.02)


def test_small_dcgan_has_the_reference_layers():
    """Trainable variables of PacGAN's Stacked MNIST model (D = 1/4 G), counted from its model.py."""
    cfg = RunConfig(model="small-dcgan", dataset="digits", z_dim=256, width=8, d_width=2)
    g, d = build_models(cfg, StackedShape(), CPU)
    # G: linear 256 -> 1024 (+bias), BN over 64 channels, deconvs 64 -> 32 -> 16 -> 8 and conv 8 -> 3
    # (each with bias), BN over 32, 16 and 8 channels
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(g) == 256 * 1024 + 1024 + 2 * 64 + (9 * 64 * 32 + 32) + 2 * 32 + (9 * 32 * 16 + 16) + 2 * 16 \
        + (9 * 16 * 8 + 8) + 2 * 8 + (9 * 8 * 3 + 3) == 287_875
    assert count(d) == (9 * 3 * 2 + 2) + 4 + (9 * 2 * 4 + 4) + 8 + (9 * 4 * 8 + 8) + 16 + (16 * 8 + 1) == 585
    first = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)][0]
    assert isinstance(first, nn.BatchNorm2d) and first.num_features == 64
    convs = [m for m in (*d.modules(), *g.modules()) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.weight.abs().max() <= 0.04 for c in convs)  # truncated at 2 sigma
    deconvs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]  # N(0, 0.02), not truncated
    assert g.project.weight.abs().max() > 0.06 and max(m.weight.abs().max() for m in deconvs) > 0.06
    packed = build_models(cfg.replace(pack=2, batch_size=256), StackedShape(), CPU)[1]
    assert packed.inner.features[0].in_channels == 6


@pytest.mark.parametrize("training", [True, False])
def test_small_dcgan_computes_the_tensorflow_padded_networks(training):
    """PyTorch's symmetric padding with one flip at D's input and G's output is TensorFlow's SAME
    padding layer by layer, with the weights relabelled (tests/tf_same.py)."""
    cfg = RunConfig(model="small-dcgan", dataset="digits", z_dim=16, width=4, d_width=2, pack=2, batch_size=16)
    g, d = build_models(cfg, StackedShape(), CPU)
    g, d = g.double().train(training), d.inner.double().train(training)
    with torch.no_grad():  # moved statistics and shifts, so that population statistics are tested too
        for m in (*g.modules(), *d.modules()):
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2.0), m.bias.uniform_(-0.1, 0.1)
    lg, ld = literal(g, d)
    z = torch.randn(8, 16, dtype=torch.float64)
    x = torch.rand(8, 6, 28, 28, dtype=torch.float64) * 2 - 1  # packs of two 3-channel images
    with torch.no_grad():
        assert torch.allclose(g(z), lg(z), rtol=0, atol=1e-12)
        assert torch.allclose(d(x), ld(x), rtol=0, atol=1e-12)
        assert not torch.allclose(g(z), g(z).flip(-1), atol=1e-3)  # (the flip is not a no-op)


class StackedShape:
    """What the models read of Stacked MNIST: 3 x 28 x 28 images in [-1, 1]."""
    shape, bounded, num_classes = (3, 28, 28), True, 0


def test_same_latents_update_runs_g_on_the_latents_of_ds_step(monkeypatch):
    """DCGAN-tensorflow's loop: D's step, then G's step on the same z against the updated D."""
    seen = []
    real_generate = train_module.generate
    monkeypatch.setattr(train_module, "generate", lambda g, z, y, pack: seen.append(z.clone()) or real_generate(g, z, y, pack))
    cfg = RunConfig(**PAPER, steps=3)
    for update, same in (("alternating-same-latents", True), ("alternating", False)):
        seen.clear()
        _train(cfg.replace(update=update))
        assert len(seen) == 6  # per step: D's fake batch, then G's
        assert all(torch.equal(seen[2 * i], seen[2 * i + 1]) == same for i in range(3))
        assert not torch.equal(seen[0], seen[2])  # every step draws fresh latents
    same, fresh = _train(cfg.replace(update="alternating-same-latents")), _train(cfg)
    assert not _equal(same.generator, fresh.generator)


def test_evaluation_with_batch_statistics_normalises_each_batch_and_keeps_the_population_statistics():
    cfg = RunConfig(model="small-dcgan", dataset="digits", z_dim=8, width=2, d_width=2, batch_size=16, steps=3)
    g = _train(cfg).generator
    before = {k: v.clone() for k, v in g.state_dict().items()}
    x = generate(g, 10, 8, 0, CPU, bn_batch=4)  # 3 batches of 4: the last one filled up with 2 more latents
    assert not g.training and all(torch.equal(v, before[k]) for k, v in g.state_dict().items())
    noise = make_generator(0, "eval")
    z = torch.cat([torch.randn(10, 8, generator=noise), torch.randn(2, 8, generator=noise)])
    probe = copy.deepcopy(g).train()
    with torch.no_grad():
        want = torch.cat([probe(zc) for zc in z.split(4)])[:10]
        population = g(z[:10])
    assert torch.equal(x, want)
    assert torch.equal(generate(g, 10, 8, 0, CPU), population)  # bn_batch 0: the same first 10 latents
    assert not torch.allclose(x, population, atol=1e-3)


@pytest.mark.parametrize("values, message", [
    (dict(eval_bn_batch=64), "'eval_bn_batch' .* the 'mlp' generator has no batch norm"),
    (dict(g_batch_norm=True, bn_refresh=50, eval_bn_batch=64), "set one of them to 0"),
    (dict(eval_bn_batch=-1), "eval_bn_batch"),
    (dict(model="small-dcgan", dataset="digits", width=2, batch_size=16, eval_bn_batch=1), "at least 2 latents"),
    (dict(update="alternating-same-latents", step="alternating"), "step 'alternating' with update"),
])
def test_batch_statistics_and_same_latents_options_are_checked_before_training(values, message):
    with pytest.raises(UserError, match=message):
        validate_suite(single_setting_suite({"steps": 1, **values}, [0]))


def test_a_generator_without_batch_norm_refuses_batch_statistics():
    with pytest.raises(UserError, match="eval_bn_batch = 8 .* no batch norm"):
        generate(nn.Linear(4, 2), 10, 4, 0, CPU, bn_batch=8)
