"""AI2D test, masked variant (option letters drawn over the diagram labels): VK's AI2D_TEST, exact matching.

The leaderboard numbers use this masked version; lmms-lab/ai2d on the hub is the unmasked one, and scores
on it are not comparable (its rows are mapped here only so users can reproduce lmms-eval).
"""

from __future__ import annotations

from unitoken_eval.harness.plugin import BenchmarkSize, TaskError
from unitoken_eval.tasks.common.mcq_task import SMOKE_DIR, VK_COMMIT, MCQTask


def _opt(k: int):
    return lambda rec: (rec.get("options") or [None] * 4)[k] if len(rec.get("options") or []) > k else None


_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate (mcq_vanilla_eval), exact matching"


class AI2DTest(MCQTask):
    id = "ai2d_test"
    tsv_name = "AI2D_TEST"
    full_size = BenchmarkSize(3088, answer_tokens=4)
    required_columns = ("index", "image", "question", "answer", "A", "B")
    references = {"official": f"{_REF} (masked AI2D_TEST as on the leaderboard)", "vlmevalkit": _REF}
    hf_default = "lmms-lab/ai2d"
    hf_index_column = None
    hf_mapping = {"question": "question", "A": _opt(0), "B": _opt(1), "C": _opt(2), "D": _opt(3),
                  "answer": lambda rec: "ABCDEFGH"[int(rec["answer"])]}

    def __init__(self, options=None):
        super().__init__(options)
        variant = self.options.get("variant", "masked")
        if variant not in ("masked", "no_mask"):
            raise TaskError(f"ai2d_test: option variant must be 'masked' or 'no_mask', not {variant!r}")
        self.variant = variant
        if variant == "no_mask":
            self.tsv_name = "AI2D_TEST_NO_MASK"

    def smoke_source(self):
        return str(SMOKE_DIR / "AI2D_TEST.tsv")

    def extra_metrics(self, records):
        return {"variant": self.variant}
