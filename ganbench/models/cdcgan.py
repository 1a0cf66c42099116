"""Class-conditional DCGAN: the DCGAN pair of ``dcgan.py`` with the label fed to both networks.

G: a learned label code e(y) concatenated with z, then the DCGAN generator. The code is as wide as
a one-hot label (Mirza & Osindero 2014 condition on one) up to 128 wide, BigGAN's class-embedding
width for 1000 classes (stacked MNIST has 1000).
D: the projection discriminator (Miyato & Koyama 2018): logit = psi(phi(x)) + <v_y, phi(x)>, with
phi the DCGAN discriminator's convolutional features flattened (the input of its last, dense
layer), psi that dense layer, and v_y one learned vector per class. With ``cfg.spectral_norm`` the
class vectors are spectrally normalised too, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.errors import UserError
from ganbench.models.base import MODELS
from ganbench.models.blocks import image_size, weight_layer
from ganbench.models.dcgan import FIRST_SIDE, DCGANDiscriminator, DCGANGenerator

MAX_CODE = 128  # widest label code of the generator


class ConditionalGenerator(nn.Module):
    conditional = True  # called as g(z, labels)

    def __init__(self, z_dim: int, num_classes: int, channels: int, side: int, width: int, bounded: bool):
        super().__init__()
        code = min(num_classes, MAX_CODE)
        # N(0, 1) codes (PyTorch's default), the same scale as z, so neither input swamps the other
        self.embed = weight_layer(nn.Embedding(num_classes, code), std=1.0)
        self.net = DCGANGenerator(z_dim + code, channels, side, width, bounded)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # z: (B, z_dim), labels: (B,) int64 -> [z, e(y)]: (B, z_dim + code) -> (B, C, side, side)
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, num_classes: int, channels: int, side: int, width: int, sn: bool):
        super().__init__()
        self.base = DCGANDiscriminator(channels, side, width, sn)
        # N(0, 0.02) like psi's weights: both terms of the logit start at the same scale
        self.embed = weight_layer(nn.Embedding(num_classes, self.base.feature_dim), sn)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # x: (B, C, side, side), labels: (B,) int64 -> logits (B,)
        h = self.base.features(x)                                # phi(x): (B, c, s0, s0)
        unconditional = self.base.head(h).view(len(x))           # psi(phi(x)): (B,)
        projection = (self.embed(labels) * h.flatten(1)).sum(1)  # <v_y, phi(x)>: (B,)
        return unconditional + projection


@MODELS.register("cdcgan")
def cdcgan(cfg, dataset) -> tuple[nn.Module, nn.Module]:
    """class-conditional DCGAN: label code concatenated with z, projection discriminator (labelled data)"""
    channels, side = image_size(dataset, "cdcgan", tuple(FIRST_SIDE))
    k = int(dataset.num_classes)
    if k <= 0:
        raise UserError("model 'cdcgan' is class-conditional and needs a labelled dataset (num_classes > 0); "
                        "use dcgan for unlabelled data")
    g = ConditionalGenerator(cfg.z_dim, k, channels, side, cfg.width, dataset.bounded)
    d = ProjectionDiscriminator(k, channels, side, cfg.width, cfg.spectral_norm)
    return g, d
