"""DINOv2 embeddings (Oquab et al. 2023), the feature space of FD-DINOv2 (Stein et al. 2023).

The network is timm's ``VisionTransformer`` built for DINOv2 (``vit_{small,base,large,giant}_patch14_dinov2``)
and loaded from the published checkpoint (``dinov2_vit?14_pretrain.pth``, what
``torch.hub.load("facebookresearch/dinov2", ...)`` reads) or from timm's copy of it. The
embedding is the class token after the final layer norm (the hub model's output).

Preprocessing is dgm-eval's (Stein et al.'s code): the uint8 RGB image resized to 224 x 224 by
PIL's bicubic filter, scaled to [0, 1], normalised with the ImageNet mean and std. The network
was trained at 518 x 518; at 224 the DINOv2 code interpolates its position embedding on every
forward pass (bicubic, scale factor (16 + 0.1) / 37, no antialiasing). ganbench does the same
interpolation once, when loading, so the features equal the hub model's (``scripts/dinov2_parity.py``
checks this against a checkout of the DINOv2 code). timm's own resampling of the position
embedding (antialiased, to an exact size) gives slightly different numbers and is not used.

The variant comes from the file: ViT-L/14 (1024-d) is the one of published FD-DINOv2 values;
ViT-S/14 and ViT-B/14 are for quick checks and their values are not comparable with published
ones (the variant is part of every row's protocol, so they never mix).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganbench.errors import UserError
from ganbench.features.embedding import Embedding, Network, normalise, pil_bicubic, register_embedding
from ganbench.features.weights import WeightsSource, file_sha256, load_state_dict

SIZE = 224
PATCH = 14
TRAIN_GRID = 37  # 518 / 14: the position embedding's grid in the published checkpoints
INTERPOLATE_OFFSET = 0.1  # the DINOv2 code's interpolation kludge (its hub models' default)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# embedding width -> (variant, timm architecture, published file name)
VARIANTS = {
    384: ("vit-s-14", "vit_small_patch14_dinov2", "dinov2_vits14_pretrain.pth"),
    768: ("vit-b-14", "vit_base_patch14_dinov2", "dinov2_vitb14_pretrain.pth"),
    1024: ("vit-l-14", "vit_large_patch14_dinov2", "dinov2_vitl14_pretrain.pth"),
    1536: ("vit-g-14", "vit_giant_patch14_dinov2", "dinov2_vitg14_pretrain.pth"),
}
PUBLISHED_VARIANT = "vit-l-14"  # dgm-eval's default and the FD-DINOv2 of Stein et al.
URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
PREPROCESSING = ("uint8 = round((x + 1) * 127.5), gray -> RGB; PIL bicubic resize to 224x224; /255; ImageNet "
                 "mean/std; position embedding interpolated as the DINOv2 code does (offset 0.1, no antialias)")

SOURCE = WeightsSource(key="dinov2", what="DINOv2 weights", file_name=VARIANTS[1024][2], url=URL)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + M*M, D) -> (1, 1 + grid*grid, D) exactly as DINOv2's ``interpolate_pos_encoding``:
    bicubic with scale factor (grid + 0.1) / M, no antialiasing, in float32."""
    n = pos_embed.shape[1] - 1
    m = int(round(n ** 0.5))
    if m * m != n:
        raise UserError(f"DINOv2 position embedding of {n} patches is not a square grid")
    if m == grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    cls, patches = pos_embed.float()[:, :1], pos_embed.float()[:, 1:]
    scale = float(grid + INTERPOLATE_OFFSET) / m
    patches = torch.nn.functional.interpolate(patches.reshape(1, m, m, dim).permute(0, 3, 1, 2), mode="bicubic",
                                              antialias=False, scale_factor=(scale, scale))
    if tuple(patches.shape[-2:]) != (grid, grid):
        raise UserError(f"DINOv2 position embedding: {m}x{m} does not interpolate to {grid}x{grid}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat([cls, patches], dim=1).to(pos_embed.dtype)


def timm_state(state: dict[str, torch.Tensor], grid: int = SIZE // PATCH) -> tuple[str, dict[str, torch.Tensor]]:
    """(variant, state dict for timm's model at 224 x 224) from a published or timm DINOv2 checkpoint."""
    state = dict(state)
    if "register_tokens" in state or "reg_token" in state:
        raise UserError("DINOv2 checkpoints with register tokens are not supported (use the plain dinov2_vit?14 ones)")
    if "cls_token" not in state or "pos_embed" not in state or "patch_embed.proj.weight" not in state:
        raise UserError("not a DINOv2 checkpoint (no cls_token, pos_embed or patch_embed.proj.weight)")
    dim = state["cls_token"].shape[-1]
    if dim not in VARIANTS or tuple(state["patch_embed.proj.weight"].shape[-2:]) != (PATCH, PATCH):
        raise UserError(f"unknown DINOv2 variant: width {dim}, patch {tuple(state['patch_embed.proj.weight'].shape[-2:])}")
    state.pop("mask_token", None)
    renamed = {}
    for k, v in state.items():  # the giant's SwiGLU: the DINOv2 code's w12/w3 are timm's fc1/fc2
        renamed[k.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")] = v
    renamed["pos_embed"] = interpolate_pos_embed(renamed["pos_embed"], grid)
    return VARIANTS[dim][0], renamed


class DinoV2(Network):
    family = "dinov2"
    version = 1
    preprocessing = PREPROCESSING

    def __init__(self, path: Path, device: torch.device = torch.device("cpu"), batch_size: int = 32):
        import timm

        super().__init__(path, device, batch_size)
        self.variant, state = timm_state(load_state_dict(self.weights_path, "DINOv2 weights"))
        arch = {v[0]: v[1] for v in VARIANTS.values()}[self.variant]
        model = timm.create_model(arch, pretrained=False, img_size=SIZE, num_classes=0)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise UserError(f"{path}: does not fit DINOv2 {self.variant} ({str(e).splitlines()[0]})") from None
        self.dim = model.num_features
        self.model = model.to(device).eval().requires_grad_(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the network's float input (N, 3, 224, 224)."""
        x = pil_bicubic(x, SIZE).float().div_(255.0)
        return normalise(x, IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x).to(self.device))


def make_random_weights(path: Path, variant: str = "vit-s-14", seed: int = 0) -> str:
    """Write a DINOv2 checkpoint in the published format (518 x 518 position embedding, ``mask_token``)
    with random values, for tests and offline demonstrations: layer scales of 1 (the DINOv2 code's
    ``init_values``), so that every block reads the image. Returns the file's sha256."""
    import timm

    arch = {v[0]: v[1] for v in VARIANTS.values()}[variant]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(arch, pretrained=False, img_size=TRAIN_GRID * PATCH, num_classes=0, init_values=1.0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["mask_token"] = torch.zeros(1, model.num_features)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return file_sha256(path)


DINOV2 = register_embedding(Embedding(
    name="dinov2", source=SOURCE, build=lambda path, device: DinoV2(path, device),
    description="DINOv2 class-token embeddings (ViT-L/14 for published FD-DINOv2; S/B for quick checks), dgm-eval preprocessing",
))
