"""Check ganbench's ``small-dcgan`` against TensorFlow: PacGAN's Stacked MNIST networks written with
``tf.nn`` ops as its code builds them (``model.py``, ``ops.py``: NHWC, ``padding='SAME'``, batch norm
per channel in training mode), with ganbench's weights moved into TensorFlow's layout (kernels
flipped in both axes, the 4 x 4 map's positions reversed: see ganbench/models/small_dcgan.py).

    pip install tensorflow-cpu && python scripts/check_tf_same.py

Prints the largest difference of G's images and D's logits (float64); exit code 1 above 1e-10.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf
import torch

from ganbench.config import RunConfig
from ganbench.models import MODELS


class Shape:
    shape, bounded, num_classes = (3, 28, 28), True, 0


def tf_kernel(w: torch.Tensor) -> tf.Tensor:
    """A conv (out, in, kh, kw) or transposed conv (in, out, kh, kw) kernel -> TensorFlow's
    (kh, kw, in, out) or (kh, kw, out, in), flipped in both spatial axes."""
    return tf.constant(w.detach().flip(-2, -1).permute(2, 3, 1, 0).numpy())


def tf_map(t: torch.Tensor, channels: int) -> np.ndarray:
    """Rows indexed (c, i, j) of ganbench's mirrored 4 x 4 map -> rows (i, j, c) of TensorFlow's."""
    t = t.detach().reshape(channels, 4, 4, -1).flip(1, 2).permute(1, 2, 0, 3)
    return t.reshape(16 * channels, -1).numpy()


def batch_norm(x: tf.Tensor, bn: torch.nn.BatchNorm2d) -> tf.Tensor:
    mean, var = tf.nn.moments(x, axes=[0, 1, 2])  # per channel over batch and positions (NHWC)
    return tf.nn.batch_normalization(x, mean, var, bn.bias.detach().numpy(), bn.weight.detach().numpy(), bn.eps)


def tf_generator(g, z: np.ndarray) -> np.ndarray:
    top, n = g.top, len(z)
    h = tf.matmul(z, tf_map(g.project.weight, top).T) + tf_map(g.project.bias[:, None], top)[:, 0]
    h = tf.nn.relu(batch_norm(tf.reshape(h, [n, 4, 4, top]), g.net[0]))
    mods = list(g.net)[2:]
    side = 4
    for deconv, bn in zip(mods[0::3][:3], mods[1::3][:3]):
        side = {4: 7, 7: 14, 14: 28}[side]
        h = tf.nn.conv2d_transpose(h, tf_kernel(deconv.weight), [n, side, side, deconv.out_channels], [1, 2, 2, 1], "SAME")
        h = tf.nn.relu(batch_norm(h + deconv.bias.detach().numpy(), bn))
    conv = mods[9]
    h = tf.nn.conv2d(h, tf_kernel(conv.weight), [1, 1, 1, 1], "SAME") + conv.bias.detach().numpy()
    return tf.tanh(h).numpy()


def tf_discriminator(d, x: np.ndarray) -> np.ndarray:
    h = x
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in d.features if isinstance(m, torch.nn.BatchNorm2d)]
    for conv, bn in zip(convs, norms):
        h = tf.nn.conv2d(h, tf_kernel(conv.weight), [1, 2, 2, 1], "SAME") + conv.bias.detach().numpy()
        h = batch_norm(h, bn)
        h = tf.maximum(h, 0.3 * h)
    c = convs[-1].out_channels
    w = tf_map(d.head.weight.T, c)  # (16 c, 1)
    return (tf.matmul(tf.reshape(h, [len(x), -1]), w) + d.head.bias.detach().numpy())[:, 0].numpy()


def main() -> int:
    torch.manual_seed(0)
    cfg = RunConfig(model="small-dcgan", dataset="stacked-mnist", z_dim=256, width=8, d_width=2)
    g, d = (m.double().train() for m in MODELS["small-dcgan"](cfg, Shape()))
    with torch.no_grad():  # batch norm scales and shifts away from 1 and 0
        for m in (*g.modules(), *d.modules()):
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    z = torch.randn(32, 256, dtype=torch.float64)
    x = torch.rand(32, 3, 28, 28, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        ours_g, ours_d = g(z).permute(0, 2, 3, 1).numpy(), d(x).numpy()
    worst_g = float(np.abs(tf_generator(g, z.numpy()) - ours_g).max())
    worst_d = float(np.abs(tf_discriminator(d, x.permute(0, 2, 3, 1).numpy()) - ours_d).max())
    print(f"G: largest difference {worst_g:.2e} (images in [-1, 1]); D: {worst_d:.2e} (logits up to "
          f"{np.abs(ours_d).max():.2f})")
    return 0 if max(worst_g, worst_d) < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
