"""The ``unitoken`` model adapter: UniToken-{AnyRes,base}-StageII behind the ModelAdapter interface.

The family's base adapter does the work (model arguments: :mod:`unitoken_eval.model_adapters.chameleon_family.adapter`);
UniToken is its default variant: SigLIP features next to the VQ tokens, the release's T2I prompt, CFG 3.0.
"""

from __future__ import annotations

from unitoken_eval.model_adapters.chameleon_family.adapter import ChameleonFamilyAdapter


class UniTokenAdapter(ChameleonFamilyAdapter):
    id = "unitoken"
