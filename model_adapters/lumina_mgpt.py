"""Lumina-mGPT (``Alpha-VLLM/Lumina-mGPT-7B-{512,768,1024}``) on the Chameleon-family code path.

Same vendored Chameleon layout as UniToken (config.json with vocabulary_map, ``model.*``, ``lm_head``,
q/k norms ``[1, head_dim]``) but no SigLIP tower: images enter as the discrete block only, cropped with the
release's crop-size list for the model's resolution (``var_center_crop``).  Text-to-image uses Lumina's prompt
``"Generate an image of {W}x{H} according to the following prompt:\\n{prompt}"``, CFG 4.0, image top-k 2000.

Differences from the release, by design of the shared batched decoder: BOI is appended to the prompt and the
two size tokens are forced to the requested square resolution (the release lets the model emit them; a
trained model emits exactly these after that prompt).

Model args: as ``unitoken`` plus ``resolution=512|768|1024`` (default: read from the checkpoint name, else 768).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from unitoken_eval.harness.plugin import AdapterError
from unitoken_eval.model_adapters.chameleon_family.adapter import ChameleonFamilyAdapter
from unitoken_eval.model_adapters.chameleon_family.grid import ImageGrid

LUMINA_T2I = "Generate an image of {W}x{H} according to the following prompt:\n{{prompt}}"


class LuminaMGPTAdapter(ChameleonFamilyAdapter):
    id = "lumina_mgpt"
    vision = False
    gen_suffix = (8197,)
    default_cfg = 4.0
    extra_args = ("resolution",)

    def __init__(self, **model_args: Any):
        res = model_args.get("resolution")
        if res is None:
            m = re.search(r"-(512|768|1024)$", Path(str(model_args.get("path", ""))).name)
            res = m.group(1) if m else "768"
        if str(res) not in ("512", "768", "1024"):
            raise AdapterError(f"model argument resolution={res!r}: expected 512, 768 or 1024")
        self.resolution = int(res)
        from unitoken_eval.model_adapters.chameleon_family.vq import crop_sizes_for

        self.crop_sizes = crop_sizes_for(self.resolution)
        self.t2i_template = LUMINA_T2I.format(W=self.resolution, H=self.resolution)
        model_args = dict(model_args, anyres="false")
        super().__init__(**model_args)

    def image_grid(self) -> ImageGrid:
        n = self.resolution // 16  # codes per side
        return ImageGrid(rows=n, cols=n, size_token=self.vq.vocab.size_id(self.resolution // 32),
                         newline=self.vq.vocab.newline, eoi=self.vq.vocab.eoi)

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        fp["resolution"] = self.resolution
        return fp
