"""GenEval (Ghosh et al. 2023): object-focused text-to-image evaluation with a detector and a colour classifier.

Modules: prompts (metadata download/verification), rules (evaluate_images.py's rules), colors (the CLIP
colour classifier), loading (builds the detector and colour classifier from task options), smoke_models (the
tiny random colour model for offline smoke runs), task (the Task plugin).  The detector (interface, the
reference Mask2Former, NumPy 1.23's tie order, the smoke detector) is shared with T2I-CompBench++ and lives
in unitoken_eval.tasks.common.detection.
"""


def __getattr__(name):
    # The task module pulls in the harness; keep `import unitoken_eval.tasks.geneval.rules` light.
    if name == "GenEval":
        from unitoken_eval.tasks.geneval.task import GenEval

        return GenEval
    raise AttributeError(name)
