"""AI2D test, masked variant (option letters drawn over the diagram labels): VK's AI2D_TEST, exact matching.

The leaderboard numbers use this masked version; lmms-lab/ai2d on the hub is the unmasked one, and scores
on it are not comparable (its rows are mapped here only so users can reproduce lmms-eval).
"""

from __future__ import annotations

from tasks.common.mcq_task import VK_COMMIT, MCQTask


def _opt(k: int):
    return lambda rec: (rec.get("options") or [None] * 4)[k] if len(rec.get("options") or []) > k else None


_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate (mcq_vanilla_eval), exact matching"


class AI2DTest(MCQTask):
    id = "ai2d_test"
    tsv_name = "AI2D_TEST"
    required_columns = ("index", "image", "question", "answer", "A", "B")
    references = {"official": f"{_REF} (masked AI2D_TEST as on the leaderboard)", "vlmevalkit": _REF}
    hf_default = "lmms-lab/ai2d"
    hf_index_column = None
    hf_mapping = {"question": "question", "A": _opt(0), "B": _opt(1), "C": _opt(2), "D": _opt(3),
                  "answer": lambda rec: "ABCDEFGH"[int(rec["answer"])]}
