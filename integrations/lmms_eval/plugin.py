"""lmms-eval's entry point into unitoken-eval (group ``lmms_eval.models``, see pyproject.toml).

lmms-eval 0.7 builds its model registry from its own table, then loads every ``lmms_eval.models`` entry
point and registers the manifests it returns (``ModelRegistryV2.load_entrypoint_manifests``).  Only lmms-eval
calls :func:`manifests`, so importing lmms_eval inside it costs our core nothing.
"""

from __future__ import annotations

# lmms-eval model name -> class in unitoken_eval.integrations.lmms_eval.models.  Prefixed names only: lmms-eval registers
# entry points with overwrite=True, so a bare "chameleon" or "janus" could one day replace one of its own.
MODELS = {
    "unitoken": "unitoken_eval.integrations.lmms_eval.models.UniToken",
    "unitoken_eval": "unitoken_eval.integrations.lmms_eval.models.UnitokenEval",
}


def manifests():
    """The ModelManifests lmms-eval registers: ``unitoken`` and ``unitoken_eval`` (adapter chosen by model arg)."""
    from unitoken_eval.integrations.lmms_eval import require_lmms_eval

    require_lmms_eval("the unitoken-eval lmms-eval plugin")
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODELS.items()]
