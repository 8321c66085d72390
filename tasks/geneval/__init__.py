"""GenEval (Ghosh et al. 2023): object-focused text-to-image evaluation with a detector and a colour classifier.

Modules: prompts (metadata download/verification), rules (evaluate_images.py's rules), legacy_sort (NumPy
1.23's argsort, for upstream's tie order), detector (the
detector interface, shared with T2I-CompBench++), mmdet_backend / mmcv_compat / checkpoint (the reference
Mask2Former), colors (the CLIP colour classifier), smoke_models (tiny random models for offline smoke runs),
task (the Task plugin).
"""


def __getattr__(name):
    # The task module pulls in the harness; keep `import tasks.geneval.detector` light for other tasks.
    if name == "GenEval":
        from tasks.geneval.task import GenEval

        return GenEval
    raise AttributeError(name)
