"""The small Stacked MNIST DCGAN of Metz et al. 2017 (Unrolled GAN, Table 2), as PacGAN's code
re-implements it for its Table 3 (github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/
unrolled_GAN_experiment/*/model.py and ops.py), layer for layer.

G: z -> linear -> 4x4x(8w), BN, ReLU -> 3x3 stride-2 transposed convs to 7x7x(4w), 14x14x(2w) and
28x28xw, each BN, ReLU -> 3x3 conv to C channels, tanh. With w = ``width`` = 8 this is the paper's
generator (64, 32, 16, 8 channels). The first batch norm normalises the 8w channels of the 4x4 map
(TensorFlow's batch norm on an NHWC tensor), not its 16 * 8w units one by one.

D: three 3x3 stride-2 convs of v, 2v and 4v channels (28 -> 14 -> 7 -> 4), each BN and
LeakyReLU(0.3), then a linear logit. v = ``d_width``: 2 makes the "D = 1/4 G" discriminator (2, 4, 8
channels), 4 the "D = 1/2 G" one.

Padding. The reference pads as TensorFlow's ``padding='SAME'``: a stride-2 conv on an even side
puts its one zero after (bottom, right) and none before, and the transposed convs to 14 and 28
pixels keep the first 14 or 28 of their 15 or 29 rows; PyTorch's ``padding=1`` is symmetric, so its
layers read one pixel apart. Mirroring the image turns one into the other: TensorFlow's D on x is
PyTorch's D on x flipped in both axes, and TensorFlow's G is PyTorch's G with its output flipped,
each with its kernels flipped and its 4 x 4 map's positions reversed, a relabelling of independent
weights that leaves their initial distribution, and Adam's elementwise updates, as they are. So
both networks here are PyTorch's, with one flip at D's input and one at G's output: TensorFlow's
functions at PyTorch's speed, where padding each layer costs 21 % of a step
(``scripts/check_tf_same.py`` compares them with the reference written in TensorFlow;
``tests/test_reference_models.py`` with layers padded as TensorFlow pads).

Initialisation as the reference: convs from N(0, 0.02) truncated at 2 sigma, transposed convs and
linear layers from N(0, 0.02), biases 0; batch norm as TensorFlow's (its momentum 0.9 is PyTorch's
0.1; eps 1e-5; scale 1, shift 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.models.base import MODELS
from ganbench.models.blocks import Packed, image_size, to_image, weight_layer

LEAK = 0.3  # LeakyReLU slope of D in the reference code


class SmallGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, width: int, bounded: bool):
        super().__init__()
        self.top = 8 * width
        # (B, z) -> (B, 8w * 4 * 4), viewed as (B, 8w, 4, 4)
        self.project = weight_layer(nn.Linear(z_dim, self.top * 16))
        layers: list[nn.Module] = [nn.BatchNorm2d(self.top), nn.ReLU()]
        c = self.top
        for out_pad in (0, 1, 1):  # 4 -> 7 -> 14 -> 28
            layers += [weight_layer(nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=out_pad)),
                       nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        # (B, w, 28, 28) -> (B, C, 28, 28)
        layers += [weight_layer(nn.Conv2d(c, channels, 3, 1, 1), truncated=True), to_image(bounded)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # flipped: TensorFlow's SAME-padded generator (module docstring)
        return self.net(self.project(z).view(len(z), self.top, 4, 4)).flip(-2, -1)


class SmallDiscriminator(nn.Module):
    def __init__(self, channels: int, width: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(3):  # 28 -> 14 -> 7 -> 4
            layers += [weight_layer(nn.Conv2d(c_in, c, 3, 2, 1), truncated=True), nn.BatchNorm2d(c), nn.LeakyReLU(LEAK)]
            c_in, c = c, 2 * c
        self.features = nn.Sequential(*layers)
        self.head = weight_layer(nn.Linear(c_in * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, 28, 28) -> logits (B,); flipped: TensorFlow's SAME-padded discriminator (module docstring)
        return self.head(self.features(x.flip(-2, -1)).flatten(1)).squeeze(1)


@MODELS.register("small-dcgan")
def small_dcgan(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """Metz et al.'s small Stacked MNIST DCGAN, 28 px: G width 8 = 64..8 channels, d_width 2 = 'D 1/4 G'; pack"""
    channels, _ = image_size(dataset, "small-dcgan", (28,))
    g = SmallGenerator(cfg.z_dim, channels, cfg.width, dataset.bounded)
    d = SmallDiscriminator(channels * cfg.pack, cfg.d_width or cfg.width)
    return g, Packed(d, cfg.pack) if cfg.pack > 1 else d
