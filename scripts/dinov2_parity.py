"""ganbench's DINOv2 features against the DINOv2 code's own model, on the same weights file.

    python scripts/dinov2_parity.py --dinov2-code PATH [--weights FILE] [--variant vit-s-14] [--n 8]

PATH is a checkout of github.com/facebookresearch/dinov2 (the folder holding ``dinov2/``). The
reference model is built as ``dinov2/hub/backbones.py`` builds the hub models (518 x 518,
layer scale, ``interpolate_offset=0.1``, no antialiasing) and loads the file; both models then
embed the same preprocessed 224 x 224 batch. Without ``--weights`` a random-weights file in the
published format is written to a temporary folder. Prints the largest absolute and relative
differences of the embeddings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dinov2-code", required=True, type=Path, help="a checkout of facebookresearch/dinov2")
    p.add_argument("--weights", type=Path, help="a DINOv2 checkpoint (default: random weights)")
    p.add_argument("--variant", default="vit-s-14", help="for random weights: vit-s-14, vit-b-14 or vit-l-14")
    p.add_argument("--n", type=int, default=8, help="images")
    args = p.parse_args()

    sys.path.insert(0, str(args.dinov2_code))
    from dinov2.models import vision_transformer as official

    from ganbench.features import dinov2
    from ganbench.features.weights import load_state_dict

    weights = args.weights
    if weights is None:
        weights = Path(tempfile.mkdtemp()) / f"random-dinov2-{args.variant}.pth"
        dinov2.make_random_weights(weights, args.variant)
    ours = dinov2.DinoV2(weights)
    build = {"vit-s-14": official.vit_small, "vit-b-14": official.vit_base, "vit-l-14": official.vit_large,
             "vit-g-14": official.vit_giant2}[ours.variant]
    kwargs = dict(img_size=518, patch_size=14, init_values=1.0, block_chunks=0, num_register_tokens=0,
                  interpolate_antialias=False, interpolate_offset=0.1)
    if ours.variant == "vit-g-14":
        kwargs["ffn_layer"] = "swiglufused"
    ref = build(**kwargs).eval()
    ref.load_state_dict(load_state_dict(weights, "DINOv2 weights"), strict=True)

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    x = ours.preprocess(images)
    with torch.inference_mode():
        a = ours.model(x)
        b = ref(x)
    diff = (a - b).abs().max().item()
    rel = diff / b.abs().max().item()
    print(f"DINOv2 {ours.variant}, {args.n} images, weights {weights.name}: max |ganbench - dinov2 code| = {diff:.3g} "
          f"(relative {rel:.3g}); max |embedding| = {b.abs().max().item():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
