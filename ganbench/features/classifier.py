"""The domain classifier: a small CNN trained by ganbench itself, for MNIST-family data offline.

It gives features for FID in its own feature space (the penultimate layer), class probabilities
for the classifier score (the Inception Score analogue) and for class coverage, and per-channel
digit labels for Stacked MNIST. It is trained with a fixed seed on the real training split and
cached under a hash of everything that changes its weights (training data content, architecture,
recipe, seed); its accuracy on the real test split (on a held-out tenth of it when the test split is
all there is to train on: ``ganbench.features.domain``) is stored with it and recorded in every row
that uses it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import UserError
from ganbench.features.cache import cache_dir, tensor_digest
from ganbench.io import atomic_write_bytes, atomic_write_json
from ganbench.seeding import make_generator, seeded_init

VERSION = 1  # bump when the architecture or the recipe changes: invalidates every cached classifier
SIDE = 28  # inputs are resized to 28 x 28 (bilinear) before the network
FEATURE_DIM = 128
# Training length: at least ``min_samples`` images seen and at least ``min_epochs`` epochs.
RECIPE = {"min_samples": 20_000, "min_epochs": 2, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "seed": 0}


class DigitClassifier(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 16 x 28 x 28
            nn.MaxPool2d(2),  # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),  # 32 x 14 x 14
            nn.MaxPool2d(2),  # 32 x 7 x 7
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),  # 64 x 7 x 7
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU(),  # the feature layer
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, 1, H, W) in [-1, 1] -> features (B, 128), logits (B, num_classes)
        if x.shape[-1] != SIDE or x.shape[-2] != SIDE:
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
        f = self.body(x)
        return f, self.head(f)


@dataclass
class TrainedClassifier:
    net: DigitClassifier
    key: str  # content hash: changes whenever the weights would
    test_accuracy: float  # on images it was not trained on
    num_classes: int

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, H, W) in [-1, 1] -> (features (N, 128) float64, probabilities (N, classes) float64)."""
        feats, probs = [], []
        for chunk in images.split(batch_size):
            f, logits = self.net(chunk.float())
            feats.append(f.double())
            probs.append(logits.double().softmax(1))
        return torch.cat(feats), torch.cat(probs)

    @property
    def provenance(self) -> dict:
        return {"classifier": self.key, "classifier_test_accuracy": self.test_accuracy}


def _train(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, background: float = -1.0,
           seed: int = RECIPE["seed"]) -> DigitClassifier:
    """A classifier trained from scratch by ``RECIPE`` (``seed``: initialisation, order, shifts).

    The length is fixed by the set's size alone (``min_samples`` images seen, at least
    ``min_epochs`` epochs) and the last weights are kept: nothing is selected on any score."""
    with seeded_init(seed, torch.device("cpu")):
        net = DigitClassifier(num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    epochs = max(RECIPE["min_epochs"], -(-RECIPE["min_samples"] // len(train_x)))
    steps_per_epoch = (len(train_x) + RECIPE["batch_size"] - 1) // RECIPE["batch_size"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RECIPE["lr"], total_steps=epochs * steps_per_epoch)
    order = make_generator(seed, "data")
    shift = make_generator(seed, "noise")
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(train_x), generator=order).split(RECIPE["batch_size"]):
            x = _augment(train_x[idx].float(), shift, background)
            _, logits = net(x)
            loss = F.cross_entropy(logits, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def _augment(x: torch.Tensor, generator: torch.Generator, background: float = -1.0) -> torch.Tensor:
    """Random translations of up to 2 pixels (padding with the background value, -1 for digits)."""
    pad = 2
    padded = F.pad(x, (pad, pad, pad, pad), value=background)
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def recipe_digest() -> str:
    """sha256 (first 16 hex digits) of the architecture version and the training recipe: the name of
    the recipe in every row that trains classifiers with it."""
    return hashlib.sha256(json.dumps({"version": VERSION, "recipe": RECIPE}, sort_keys=True).encode()).hexdigest()[:16]


@torch.no_grad()
def predict(net: DigitClassifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N,) int64 predicted classes of (N, 1, H, W) images in [-1, 1]."""
    return torch.cat([net(chunk.float())[1].argmax(1) for chunk in images.split(batch_size)])


def accuracy(clf: TrainedClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    _, probs = clf(x)
    return float((probs.argmax(1) == y).double().mean())


def get_classifier(name: str, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                   num_classes: int, background: float = -1.0) -> TrainedClassifier:
    """The classifier for a dataset, from the cache or trained now (and cached atomically).

    ``background``: the value the shift augmentation pads with (-1: dark digits' background; +1
    for inverted digits)."""
    (train_x, train_y), (test_x, test_y) = train, test
    if train_x.dim() != 4 or train_x.shape[1] != 1:
        raise UserError(f"the domain classifier needs single-channel images, got {tuple(train_x.shape)}")
    key_doc = {"version": VERSION, "recipe": RECIPE, "num_classes": num_classes,
               "train": tensor_digest(train_x, train_y), "test": tensor_digest(test_x, test_y),
               **({"background": background} if background != -1.0 else {})}  # the key of dark-background data is unchanged
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:16]
    # named by content alone: the same training data give the same weights, whichever dataset asks
    path = cache_dir() / "classifiers" / f"{key}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            with seeded_init(0, torch.device("cpu")):
                net = DigitClassifier(num_classes)
            net.load_state_dict(blob["state_dict"])
            return TrainedClassifier(net.eval(), key, float(blob["test_accuracy"]), num_classes)
        except Exception:
            path.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt, never trusted
    net = _train(train_x, train_y, num_classes, background)
    clf = TrainedClassifier(net, key, 0.0, num_classes)
    clf.test_accuracy = accuracy(clf, test_x, test_y)
    buf = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "test_accuracy": clf.test_accuracy, "key": key_doc}, buf)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), {"dataset": name, "test_accuracy": clf.test_accuracy, **key_doc})
    return clf
