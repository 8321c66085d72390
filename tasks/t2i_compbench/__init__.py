"""T2I-CompBench++ (val split): eight category tasks and the group task ``t2i_compbench``.

Modules: prompts (official files, checksums), naming (image names), nouns (spaCy rules), blip_vqa, clipscore,
rules (spatial / 3D / numeracy / 3-in-1), detectors, depth, smoke_models, task (the Task classes).
"""

from unitoken_eval.tasks.t2i_compbench.task import (
    T2IColor,
    T2ICompBench,
    T2IComplex,
    T2INonSpatial,
    T2INumeracy,
    T2IShape,
    T2ISpatial,
    T2ISpatial3D,
    T2ITexture,
)

__all__ = [
    "T2ICompBench", "T2IColor", "T2IShape", "T2ITexture", "T2ISpatial", "T2ISpatial3D", "T2INonSpatial",
    "T2IComplex", "T2INumeracy",
]
