"""CLIP image embeddings (Radford et al. 2021): FD and k-NN metrics in CLIP space, and CMMD.

The network is torch-fidelity's port of OpenAI's CLIP image encoder (``build_model``), loaded
from OpenAI's published files (the TorchScript archives ``ViT-B-32.pt``, ``ViT-L-14.pt``,
``ViT-L-14-336px.pt`` that OpenAI's ``clip`` package and torch-fidelity download) or from a state
dict with the same names (open_clip's ``openai`` weights). The embedding is ``encode_image``'s:
the class token after ``ln_post``, times the projection. ResNet CLIPs are not supported.

Both extractors resize as the references read image files: PIL's bicubic filter on the uint8
image to the network's resolution (torchvision's ``Resize(BICUBIC)`` on a PIL image in open_clip's
and dgm-eval's transform; ``Image.resize(BICUBIC)`` after a centre crop in the CMMD code, whose
later float resize is then the identity), scaled to [0, 1], CLIP mean and std.

- ``clip`` (``fd_clip``, ``kid_clip``, the k-NN metrics, ``vendi_clip``, ``rke_modes_clip``):
  ``encode_image`` embeddings of any ViT variant; OpenAI's ViT-L/14 is the default file. This is
  torch-fidelity's ``clip-vit-*`` feature. dgm-eval's CLIP column differs in two ways that
  ganbench does not copy: it uses open_clip's DataComp ViT-L/14 weights (GELU, not OpenAI's
  QuickGELU) and the 1,024-d features before the projection.
- ``clip_cmmd`` (``cmmd``): the CMMD reference (Jayasumana et al. 2024): ViT-L/14@336
  embeddings scaled to unit length. Another variant is an error unless
  ``GANBENCH_ALLOW_OTHER_WEIGHTS=1`` (tests use ViT-B/32).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ganbench.errors import UserError
from ganbench.features.embedding import Embedding, Network, normalise, pil_bicubic, register_embedding
from ganbench.features.weights import WeightsSource, file_sha256, load_state_dict

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# (vision width, patch, resolution) -> variant, torch-fidelity's name
VARIANTS = {
    (768, 32, 224): ("vit-b-32", "clip-vit-b-32"),
    (768, 16, 224): ("vit-b-16", "clip-vit-b-16"),
    (1024, 14, 224): ("vit-l-14", "clip-vit-l-14"),
    (1024, 14, 336): ("vit-l-14-336", "clip-vit-l-14-336px"),
}
CMMD_VARIANT = "vit-l-14-336"
# OpenAI's published files (their sha256 is in their address), as torch-fidelity names them
PUBLISHED_SHA256 = {
    "clip-vit-b-32": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    "clip-vit-l-14": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    "clip-vit-l-14-336px": "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
}
FILE_STEMS = {"clip-vit-b-32": "ViT-B-32", "clip-vit-l-14": "ViT-L-14", "clip-vit-l-14-336px": "ViT-L-14-336px"}


def _published(tf_name: str) -> tuple[str, str]:
    """(file name in torch hub's checkpoint folder, address) of torch-fidelity's download of a variant."""
    sha = PUBLISHED_SHA256[tf_name]
    return f"{tf_name}-{sha}.pt", f"https://openaipublic.azureedge.net/clip/models/{sha}/{FILE_STEMS[tf_name]}.pt"


def variant_of(state: dict[str, torch.Tensor]) -> str:
    """The CLIP ViT variant a state dict holds, from its tensor shapes."""
    if "visual.proj" not in state or "visual.conv1.weight" not in state:
        raise UserError("not a CLIP ViT checkpoint (no visual.proj / visual.conv1.weight; ResNet CLIPs are not supported)")
    if "text_projection" not in state:
        raise UserError("CLIP checkpoint without text_projection (the embedding width is read from it)")
    w = state["visual.conv1.weight"]
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    key = (w.shape[0], w.shape[-1], w.shape[-1] * grid)
    return VARIANTS[key][0] if key in VARIANTS else f"vit-w{key[0]}-p{key[1]}-{key[2]}"


class Clip(Network):
    """CLIP's image encoder; ``unit``: embeddings scaled to unit length (CMMD)."""

    family = "clip"
    version = 1

    def __init__(self, path: Path, device: torch.device = torch.device("cpu"), batch_size: int = 32,
                 unit: bool = False):
        from torch_fidelity.feature_extractor_clip import build_model

        super().__init__(path, device, batch_size)
        state = load_state_dict(self.weights_path, "CLIP weights")
        self.variant = variant_of(state)
        try:
            model = build_model(dict(state), torch.float32)
        except Exception as e:  # noqa: BLE001 - missing or misshapen tensors
            raise UserError(f"{path}: not a CLIP ViT checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        self.visual = model.visual.to(device).eval().requires_grad_(False)
        self.resolution = self.visual.input_resolution
        self.dim = self.visual.output_dim
        self.unit = unit
        self.family = "clip-cmmd" if unit else "clip"
        self.preprocessing = (f"uint8 = round((x + 1) * 127.5), gray -> RGB; PIL bicubic resize to "
                              f"{self.resolution}x{self.resolution}; /255; CLIP mean/std; encode_image"
                              + ("; L2-normalised" if unit else ""))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the network's float input (N, 3, R, R)."""
        x = pil_bicubic(x, self.resolution).float().div_(255.0)
        return normalise(x, CLIP_MEAN, CLIP_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.visual(self.preprocess(x).to(self.device))
        return e / torch.linalg.vector_norm(e, dim=-1, keepdim=True) if self.unit else e


def make_random_weights(path: Path, variant: str = "vit-b-32", seed: int = 0, torchscript: bool = False) -> str:
    """Write a CLIP ViT image encoder with random values in OpenAI's key names (plus the text
    projection the loader reads the width from), as a state dict or, with ``torchscript``, as a
    TorchScript archive like OpenAI's files. For tests and offline demonstrations. Returns the sha256."""
    from torch_fidelity.feature_extractor_clip import VisionTransformer

    (width, patch, res), _ = next((k, v) for k, v in VARIANTS.items() if v[0] == variant)
    embed = {768: 512, 1024: 768}[width]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        visual = VisionTransformer(input_resolution=res, patch_size=patch, width=width,
                                   layers={768: 12, 1024: 24}[width], heads=width // 64, output_dim=embed)
        holder = torch.nn.Module()
        holder.visual = visual
        holder.text_projection = torch.nn.Parameter(torch.randn(embed, embed) * embed ** -0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if torchscript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save's deprecation notice
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks traced as constants
            torch.jit.save(torch.jit.script(_Holder(holder)), str(path))
    else:
        torch.save({k: v.detach().clone() for k, v in holder.state_dict().items()}, path)
    return file_sha256(path)


class _Holder(torch.nn.Module):
    """A scriptable module with ``holder``'s parameters under the same names."""

    def __init__(self, holder: torch.nn.Module):
        super().__init__()
        self.visual = torch.jit.trace(holder.visual, torch.zeros(1, 3, holder.visual.input_resolution,
                                                                 holder.visual.input_resolution))
        self.text_projection = holder.text_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


_L14 = _published("clip-vit-l-14")
_L14_336 = _published("clip-vit-l-14-336px")
SOURCE = WeightsSource(key="clip", what="CLIP weights", file_name=_L14[0], url=_L14[1])
SOURCE_CMMD = WeightsSource(key="cmmd", what="CLIP ViT-L/14@336 weights (CMMD)", file_name=_L14_336[0], url=_L14_336[1])


def _cmmd_variant(net: Network) -> str | None:
    if net.variant != CMMD_VARIANT:
        return f"CMMD is defined on CLIP ViT-L/14@336 embeddings; this file holds CLIP {net.variant}"
    return None


CLIP = register_embedding(Embedding(
    name="clip", source=SOURCE, build=lambda path, device: Clip(path, device),
    description="CLIP encode_image embeddings (any ViT; OpenAI's ViT-L/14 by default), PIL bicubic resize",
))
CLIP_CMMD = register_embedding(Embedding(
    name="clip_cmmd", source=SOURCE_CMMD, build=lambda path, device: Clip(path, device, unit=True),
    check=_cmmd_variant,
    description="unit-length CLIP ViT-L/14@336 embeddings, as the CMMD reference computes them (cmmd)",
))
