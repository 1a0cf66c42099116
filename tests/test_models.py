"""Image models (dcgan, sngan, cdcgan): shapes and ranges, gradients, spectral norm, conditioning,
initialisation, seeded construction, input checks, the papers' layer lists and parameter counts,
and a few real training steps."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ganbench.config import RunConfig
from ganbench.errors import UserError
from ganbench.models import MODELS, is_conditional
from ganbench.seeding import seeded_init
from ganbench.train import build_models, train

CPU = torch.device("cpu")
IMAGE_MODELS = ("dcgan", "sngan", "cdcgan")
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 28, 28), (1, 32, 32)]
NUM_CLASSES = 10


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Width-8 nets gain nothing from intra-op threads, and on a busy 2-core machine spinning OpenMP
    threads make them 3-40x slower; the previous thread count is restored for other test files."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class FakeImages:
    """Stands in for an image dataset: uniform noise images in [-1, 1], labels when num_classes > 0."""

    shape: tuple
    num_classes: int = 0
    bounded: bool = True
    name: str = "fake"
    default_metrics: tuple = ()

    def batches(self, batch_size, generator, device):
        while True:
            x = torch.rand((batch_size, *self.shape), generator=generator, device=device) * 2 - 1
            y = None
            if self.num_classes:
                y = torch.randint(self.num_classes, (batch_size,), generator=generator, device=device)
            yield x, y


def fake_dataset(model, shape):
    return FakeImages(tuple(shape), num_classes=NUM_CLASSES if model == "cdcgan" else 0)


def config(model, **changes):
    return RunConfig(model=model, dataset="fake", **{"z_dim": 16, "width": 8, **changes})


def build(model, shape=(3, 32, 32), seed=0, **changes):
    with seeded_init(seed, CPU):
        return MODELS[model](config(model, **changes), fake_dataset(model, shape))


def forward(g, d, z, y):
    """(samples, logits of the samples), conditional models given the labels ``y``."""
    if is_conditional(g):
        x = g(z, y)
        return x, d(x, y)
    x = g(z)
    return x, d(x)


def noise(n, z_dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, z_dim, generator=gen), torch.arange(n) % NUM_CLASSES


def count(module):
    return sum(p.numel() for p in module.parameters())


def layers(module, kind):
    """(in, out, kernel, stride) of every layer of ``kind``, in order."""
    return [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
            for m in module.modules() if isinstance(m, kind)]  # a ConvTranspose2d is no Conv2d


# ----------------------------------------------------------------------------------------------
# Shapes, ranges, gradients


@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_output_shapes_dtypes_and_ranges(model, shape):
    g, d = build(model, shape)
    z, y = noise(5)
    x, logits = forward(g, d, z, y)
    assert x.shape == (5, *shape) and x.dtype == torch.float32
    assert x.abs().max() <= 1.0 and x.std() > 0  # tanh output, not constant
    assert logits.shape == (5,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("model,sn", [("dcgan", False), ("dcgan", True), ("sngan", False),
                                      ("cdcgan", False), ("cdcgan", True)])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])  # both sides; channels touch only the ends
def test_backward_gives_every_parameter_a_finite_nonzero_gradient(model, sn, shape):
    g, d = build(model, shape, spectral_norm=sn)
    z, y = noise(6)
    real = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fake, fake_logits = forward(g, d, z, y)
    real_logits = d(real, y) if is_conditional(g) else d(real)
    (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()).backward()
    for net in (g, d):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------------------------
# Spectral norm


def _spectrally_normalised(m):
    return parametrize.is_parametrized(m, "weight") and any(
        type(p).__name__ == "_SpectralNorm" for p in m.parametrizations.weight)


@pytest.mark.parametrize("shape", SHAPES)
def test_sngan_has_spectral_norm_on_every_discriminator_layer(shape):
    g, d = build("sngan", shape)  # cfg.spectral_norm is False: sngan's D is normalised regardless
    weighted = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 8  # seven convolutions and the dense layer of Table 3
    assert all(_spectrally_normalised(m) for m in weighted)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    # normalised weights have largest singular value 1 once the power iteration (one step per training
    # forward) has converged; unnormalised N(0, 0.02) weights at width 8 have 0.1 to 0.5
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for _ in range(20):
            d(x)
    d.eval()
    for m in weighted:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert abs(sigma - 1) < 0.03
    assert not any(parametrize.is_parametrized(m) for m in g.modules())  # the paper normalises D only


@pytest.mark.parametrize("model", ["dcgan", "cdcgan"])
def test_dcgan_spectral_norm_option_replaces_batch_norm_in_d(model):
    _, d_plain = build(model)
    _, d_sn = build(model, spectral_norm=True)
    kinds = (nn.Conv2d, nn.Embedding)
    plain = [m for m in d_plain.modules() if isinstance(m, kinds)]
    normed = [m for m in d_sn.modules() if isinstance(m, kinds)]
    # 32 px: three convolutions and the head (+ the class vectors)
    assert len(plain) == len(normed) == (5 if model == "cdcgan" else 4)
    assert not any(_spectrally_normalised(m) for m in plain)
    assert all(_spectrally_normalised(m) for m in normed)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_plain.modules()) == 2  # not on the input layer
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d_sn.modules())
    assert all(m.bias is not None for m in normed if isinstance(m, nn.Conv2d))  # no BN shift to stand in


# ----------------------------------------------------------------------------------------------
# Conditioning


def test_conditional_generator_output_changes_with_the_label():
    g, _ = build("cdcgan", (1, 28, 28))
    assert type(g).conditional is True and is_conditional(g)
    g.eval()  # batch norm with running statistics: each sample depends on its own inputs only
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(0)).expand(NUM_CLASSES, -1)
    with torch.no_grad():
        by_label = g(z, torch.arange(NUM_CLASSES))
        same_label = g(z, torch.full((NUM_CLASSES,), 3))
    # at initialisation (running statistics, N(0, 0.02) weights) outputs are ~3e-3 in size; the label
    # moves them by ~40% of that, so compare with the output's own scale
    diffs = (by_label[1:] - by_label[0]).flatten(1).abs().max(dim=1).values
    assert (diffs > 0.1 * by_label.abs().max()).all()
    assert torch.equal(same_label, same_label[:1].expand_as(same_label))


def test_projection_discriminator_is_psi_plus_class_projection():
    _, d = build("cdcgan", (3, 32, 32))
    # training mode: batch statistics make the features O(1) (with the initial running statistics
    # they are ~1e-3); the same batch gives the same features on every call
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.ones(4, dtype=torch.long))
        assert (a - b).abs().min() > 0.01  # the label changes the logit
        h = d.base.features(x)
        expected = d.base.head(h).view(4) + (d.embed.weight[2] * h.flatten(1)).sum(1)
        assert torch.allclose(d(x, torch.full((4,), 2)), expected, rtol=1e-5, atol=1e-6)
        d.embed.weight.zero_()  # no class vectors: the plain DCGAN logit, whatever the label
        assert torch.equal(d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.ones(4, dtype=torch.long)))


def test_generator_label_code_is_one_hot_wide_up_to_128():
    g10, d10 = build("cdcgan")
    g1000, _ = MODELS["cdcgan"](config("cdcgan"), FakeImages((3, 28, 28), num_classes=1000))  # stacked MNIST
    assert g10.embed.weight.shape == (10, 10) and g1000.embed.weight.shape == (1000, 128)
    assert d10.embed.weight.shape == (10, 4 * 8 * 4 * 4)  # phi(x) at 32 px, width 8: 4w x 4 x 4


def test_cdcgan_refuses_unlabelled_data():
    with pytest.raises(UserError, match="labelled"):
        MODELS["cdcgan"](config("cdcgan"), FakeImages((3, 32, 32), num_classes=0))


# ----------------------------------------------------------------------------------------------
# Initialisation and seeding


def test_dcgan_initialisation_follows_the_paper():
    g, d = build("dcgan", (3, 32, 32), width=64)
    for net in (g, d):
        convs = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        big = max(convs, key=torch.Tensor.numel)  # 256x128x4x4 in G, 128x256x4x4 in D
        assert big.numel() >= 500_000
        assert abs(big.std().item() - 0.02) < 0.002  # N(0, 0.02): std within 10%
        assert abs(big.mean().item()) < 0.001
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        scales = torch.cat([m.weight.detach() for m in bns])
        assert abs(scales.mean().item() - 1) < 0.005 and abs(scales.std().item() - 0.02) < 0.005  # N(1, 0.02)
        assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bns)


@pytest.mark.parametrize("model", IMAGE_MODELS)
def test_seeded_construction_is_bit_identical(model):
    def weights(seed):
        g, d = build(model, (1, 28, 28), seed=seed, spectral_norm=True)
        return {f"{k}.{n}": t.clone() for k, net in (("g", g), ("d", d)) for n, t in net.state_dict().items()}

    a = weights(0)
    torch.manual_seed(1234)  # the global state must not matter
    b = weights(0)
    c = weights(1)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # parameters and buffers (spectral norm's u, v)
    random = [k for k in a if a[k].is_floating_point() and a[k].numel() > 1 and a[k].std() > 0]
    assert len(random) >= 6
    assert all(not torch.equal(a[k], c[k]) for k in random)


# ----------------------------------------------------------------------------------------------
# Unsupported input


@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 20, 20), (3, 32, 28), (3, 16, 16), (2,)])
def test_unsupported_shapes_raise_user_error_naming_the_supported_sides(model, shape):
    with pytest.raises(UserError, match=r"28, 32.* or 64") as e:
        MODELS[model](config(model), FakeImages(shape, num_classes=NUM_CLASSES))
    assert model in str(e.value) and "\n" not in str(e.value)


def test_48_px_only_where_natural():
    assert build("sngan", (3, 48, 48))[0](noise(2)[0]).shape == (2, 3, 48, 48)  # STL-10 in the SN-GAN paper
    with pytest.raises(UserError):
        build("dcgan", (3, 48, 48))


# ----------------------------------------------------------------------------------------------
# Layer lists and parameter counts at the papers' widths
#
# How the architectures were checked: dcgan at 64 px, z 100, width 64, 3 channels is compared layer
# by layer with pytorch/examples dcgan/main.py (the reference DCGAN: nz=100, ngf=ndf=64, nc=3), and
# its counts are those of that script's netG / netD, summed by hand below. sngan at 32 px, z 128,
# width 64 is compared layer by layer with Table 3 of Miyato et al. 2018 (standard CNN, CIFAR-10:
# M_g = 4, M = 32), and its counts are summed by hand from the table, with the choices the table
# leaves open taken from the authors' chainer-gan-lib code (BN after the dense layer; biases).


def test_dcgan_matches_the_reference_layers_and_parameter_count():
    g, d = build("dcgan", (3, 64, 64), z_dim=100, width=64)
    assert layers(g, nn.ConvTranspose2d) == [(100, 512, 4, 1), (512, 256, 4, 2), (256, 128, 4, 2),
                                             (128, 64, 4, 2), (64, 3, 4, 2)]
    assert layers(d, nn.Conv2d) == [(3, 64, 4, 2), (64, 128, 4, 2), (128, 256, 4, 2), (256, 512, 4, 2),
                                    (512, 1, 4, 1)]
    # G: transposed convs (no bias) + BN scale and shift on all but the output layer
    g_expected = 16 * (100 * 512 + 512 * 256 + 256 * 128 + 128 * 64 + 64 * 3) + 2 * (512 + 256 + 128 + 64)
    # D: convs (no bias) + BN on the three middle layers
    d_expected = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 1) + 2 * (128 + 256 + 512)
    assert count(g) == g_expected == 3_576_704
    assert count(d) == d_expected == 2_765_568
    # the benchmark's 32 px variant drops the 4x4x512 stage on both sides
    g32, d32 = build("dcgan", (3, 32, 32), z_dim=100, width=64)
    assert (count(g32), count(d32)) == (1_068_928, 663_296)


def test_sngan_matches_table_3_and_parameter_count():
    g, d = build("sngan", (3, 32, 32), z_dim=128, width=64)
    dense = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(128, 4 * 4 * 512)]
    assert layers(g, nn.ConvTranspose2d) == [(512, 256, 4, 2), (256, 128, 4, 2), (128, 64, 4, 2)]
    assert layers(g, nn.Conv2d) == [(64, 3, 3, 1)]
    assert layers(d, nn.Conv2d) == [(3, 64, 3, 1), (64, 64, 4, 2), (64, 128, 3, 1), (128, 128, 4, 2),
                                    (128, 256, 3, 1), (256, 256, 4, 2), (256, 512, 3, 1)]
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.1] * 7
    # G: dense 128 -> 4*4*512 (no bias) + its BN; deconvs (no bias) + BN; 3x3 conv with bias
    g_expected = (128 * 8192 + 2 * 8192 + 16 * (512 * 256 + 256 * 128 + 128 * 64)
                  + 2 * (256 + 128 + 64) + 9 * 64 * 3 + 3)
    # D: seven convs with biases, then dense 4*4*512 -> 1 with bias
    d_expected = (9 * 3 * 64 + 16 * 64 * 64 + 9 * 64 * 128 + 16 * 128 * 128 + 9 * 128 * 256
                  + 16 * 256 * 256 + 9 * 256 * 512 + (64 + 64 + 128 + 128 + 256 + 256 + 512) + 8192 + 1)
    assert count(g) == g_expected == 3_820_099
    assert count(d) == d_expected == 2_935_873


# ----------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("model,shape", [("dcgan", (1, 28, 28)), ("sngan", (3, 32, 32)),
                                         ("cdcgan", (3, 28, 28))])
@pytest.mark.parametrize("loss", ["ns", "hinge"])
def test_a_few_training_steps(model, shape, loss):
    cfg = config(model, loss=loss, steps=3, batch_size=8, n_dis=1)
    dataset = fake_dataset(model, shape)
    result = train(cfg, dataset, CPU)
    assert result.diverged is None and result.steps_done == 3
    assert len(result.history) == 3
    assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"]])).all() for r in result.history)
    g0, _ = build_models(cfg, dataset, CPU)  # the initial weights: training must have changed them
    assert any(not torch.equal(a, b) for a, b in zip(g0.parameters(), result.generator.parameters()))
    g = result.generator
    assert not g.training
    z, y = noise(8)
    with torch.no_grad():
        x = g(z, y) if is_conditional(g) else g(z)
    assert x.shape == (8, *shape) and torch.isfinite(x).all() and x.abs().max() <= 1.0
