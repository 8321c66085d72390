"""SEED-Bench (image part): plain VK multiple choice, exact matching (VK e8e78f05 ``mcq_vanilla_eval``).

lmms-eval compares only the first character with the answer letter; we score as VK does for both profiles
and say so in the references.
"""

from __future__ import annotations

from unitoken_eval.harness.types import BenchmarkSize
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, MCQTask
from unitoken_eval.tasks.common.vlmeval_tsv import TsvRow

_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate (mcq_vanilla_eval), exact matching"


class SEEDBenchImg(MCQTask):
    id = "seedbench_img"
    tsv_name = "SEEDBench_IMG"
    full_size = BenchmarkSize(14233, answer_tokens=4)
    required_columns = ("index", "image", "question", "answer", "A", "B", "category")
    references = {"official": f"{_REF} (VK's rules stand in for SEED-Bench's likelihood protocol)", "vlmevalkit": _REF}
    hf_default = "lmms-lab/SEED-Bench"
    hf_split = "test"
    hf_index_column = "question_id"
    hf_mapping = {"question": "question", "A": "choice_a", "B": "choice_b", "C": "choice_c", "D": "choice_d",
                  "answer": "answer", "category": lambda rec: rec.get("question_type_id"), "data_type": "data_type"}

    def filter_hf_row(self, row: TsvRow) -> bool:
        # The HF copy mixes video questions in; SEEDBench_IMG is the image part only.
        return row.fields.get("data_type") in (None, "image")
