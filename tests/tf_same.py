"""PacGAN's Stacked MNIST networks as its TensorFlow code computes them, layer by layer: convolutions
padded as ``padding='SAME'``. ``SameConv2d`` and ``SameConvTranspose2d`` give what TensorFlow 2.21's
``tf.nn.conv2d`` and ``tf.nn.conv2d_transpose(output_shape, padding='SAME')`` give with the same
weights (to 1e-15 in float64, at every layer shape of the model; checked with TensorFlow installed,
which the tests do not need; ``scripts/check_tf_same.py`` checks the whole model against it). ``literal(g, d)`` builds these networks with the weights of
ganbench's ``small-dcgan``, whose PyTorch-padded layers with one flip at D's input and one at G's
output compute the same functions faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.models.small_dcgan import LEAK, SmallDiscriminator, SmallGenerator


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``padding='SAME'`` along one side of ``size`` pixels: (before, after) zeros, so
    that the output has ceil(size / stride) pixels; an odd total puts the extra zero after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Wrapped(nn.Module):
    """A layer around ``self.conv`` whose weight and bias are the conv's."""

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.conv.bias


class SameConv2d(_Wrapped):
    """TensorFlow's ``conv2d(padding='SAME')`` on square inputs of ``size`` pixels. With stride 2 and
    an even size, TensorFlow pads one zero after (bottom and right) and none before, where
    ``nn.Conv2d(padding=1)`` pads one on each side: the same output size, read one pixel apart."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, size: int):
        super().__init__()
        before, after = same_padding(size, kernel, stride)
        self.pad = (before, after, before, after)  # (left, right, top, bottom)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, c_in, size, size) -> (B, c_out, ceil(size / stride), ceil(size / stride))
        return self.conv(F.pad(x, self.pad) if any(self.pad) else x)


class SameConvTranspose2d(_Wrapped):
    """TensorFlow's ``conv2d_transpose(output_shape, padding='SAME')``: the adjoint of ``SameConv2d``
    from ``size`` pixels (the output side) to ceil(size / stride). The full transposed convolution
    has (ceil(size / stride) - 1) * stride + kernel pixels; TensorFlow keeps ``size`` of them from
    the SAME padding's ``before``, where ``nn.ConvTranspose2d(padding=1, output_padding=1)`` starts
    one later."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, size: int):
        super().__init__()
        self.start, self.size = same_padding(size, kernel, stride)[0], size
        self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, c_in, s, s) -> (B, c_out, size, size)
        a, b = self.start, self.start + self.size
        return self.conv(x)[:, :, a:b, a:b]


class LiteralGenerator(nn.Module):
    """The reference G: linear -> 4x4 map, BN, ReLU -> SAME transposed convs -> SAME conv, tanh."""

    def __init__(self, g: SmallGenerator):
        super().__init__()
        self.top = g.top
        self.project = nn.Linear(g.project.in_features, g.project.out_features)
        self.net = nn.Sequential()
        side = 4
        for m in g.net:
            if isinstance(m, nn.ConvTranspose2d):
                side = {4: 7, 7: 14, 14: 28}[side]
                self.net.append(SameConvTranspose2d(m.in_channels, m.out_channels, 3, 2, side))
            elif isinstance(m, nn.Conv2d):
                self.net.append(SameConv2d(m.in_channels, m.out_channels, 3, 1, 28))
            else:
                self.net.append(type(m)(m.num_features) if isinstance(m, nn.BatchNorm2d) else type(m)())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(len(z), self.top, 4, 4))


class LiteralDiscriminator(nn.Module):
    """The reference D: three SAME stride-2 convs with BN and LeakyReLU(0.3), a linear logit."""

    def __init__(self, d: SmallDiscriminator):
        super().__init__()
        self.features = nn.Sequential()
        side = 28
        for m in d.features:
            if isinstance(m, nn.Conv2d):
                self.features.append(SameConv2d(m.in_channels, m.out_channels, 3, 2, side))
                side = -(-side // 2)
            elif isinstance(m, nn.BatchNorm2d):
                self.features.append(nn.BatchNorm2d(m.num_features))
            else:
                self.features.append(nn.LeakyReLU(LEAK))
        self.head = nn.Linear(d.head.in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def _flip_map(t: torch.Tensor, channels: int) -> torch.Tensor:
    """Reverse the 4 x 4 positions of a tensor whose first dimension is a (channels, 4, 4) map."""
    return t.reshape(channels, 4, 4, *t.shape[1:]).flip(1, 2).reshape(t.shape)


@torch.no_grad()
def literal(g: SmallGenerator, d: SmallDiscriminator) -> tuple[LiteralGenerator, LiteralDiscriminator]:
    """The TensorFlow-padded networks with ``g``'s and ``d``'s weights relabelled: every kernel
    flipped in both axes, G's linear outputs and D's linear inputs in reversed 4 x 4 positions."""
    dtype = g.project.weight.dtype
    lg, ld = LiteralGenerator(g).to(dtype), LiteralDiscriminator(d).to(dtype)
    lg.project.weight.copy_(_flip_map(g.project.weight, g.top))
    lg.project.bias.copy_(_flip_map(g.project.bias, g.top))
    ld.head.weight.copy_(_flip_map(d.head.weight.T, d.head.in_features // 16).T)
    ld.head.bias.copy_(d.head.bias)
    for fast, slow in ((g.net, lg.net), (d.features, ld.features)):
        for a, b in zip(fast, slow):
            if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d)):
                b.weight.copy_(a.weight.flip(-2, -1))
                b.bias.copy_(a.bias)
            elif isinstance(a, nn.BatchNorm2d):
                b.load_state_dict(a.state_dict())
    return lg.train(g.training), ld.train(d.training)
