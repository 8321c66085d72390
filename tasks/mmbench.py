"""MMBench dev (EN / CN): VLMEvalKit's MCQ prompt and CircularEval, which is MMBench's official evaluator.

Rows at ``index + k*1e6`` are the same question with rotated options; a question counts only if every
rotation is answered right (VK e8e78f05 ``mcq_circular_eval``).  per_sample is keyed by the main index.
The test split has no public answers (submission only), so only dev is offered.
"""

from __future__ import annotations

from unitoken_eval.harness.types import BenchmarkSize
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, MCQTask

_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate with mcq_circular_eval, exact matching"


class _MMBenchDev(MCQTask):
    circular = True
    required_columns = ("index", "image", "question", "answer", "A", "B", "category", "l2-category")
    references = {"official": f"{_REF} (MMBench's official evaluator)", "vlmevalkit": _REF}
    hf_default = "lmms-lab/MMBench"
    hf_split = "dev"
    split_name = "dev"
    # 4329 rows: 1164 questions, each with its circular copies (rotated options) about one image
    full_size = BenchmarkSize(4329, images=1164, answer_tokens=4)
    hf_mapping = {"question": "question", "hint": "hint", "A": "A", "B": "B", "C": "C", "D": "D",
                  "answer": "answer", "category": "category", "l2-category": "L2-category", "split": "split"}  # lmms-eval en_utils.py reads L2-category


class MMBenchDevEN(_MMBenchDev):
    id = "mmbench_dev_en"
    tsv_name = "MMBench_DEV_EN"
    hf_config = "en"


class MMBenchDevCN(_MMBenchDev):
    id = "mmbench_dev_cn"
    tsv_name = "MMBench_DEV_CN"
    hf_config = "cn"
