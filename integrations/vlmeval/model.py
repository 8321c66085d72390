"""Our ModelAdapters as a VLMEvalKit model, and local-data variants of its dataset classes.

VLMEvalKit (e8e78f05) builds a model from a config entry ``{"class": NAME, ...}`` with
``getattr(vlmeval.api, NAME)`` or ``getattr(vlmeval.vlm, NAME)`` and the entry's other keys as keyword
arguments; it then calls ``generate(message, dataset=NAME)`` once per row, where ``message`` is the dataset's
prompt (``[{'type': 'image', 'value': PATH}, {'type': 'text', 'value': QUESTION}]``).  :func:`register` adds
our class to ``vlmeval.vlm`` so a config can name it::

    "model": {"unitoken-tiny": {"class": "UniTokenEval", "model": "tiny", "model_args": "seed=0"}}

The dataset builds the prompt (we do not override ``use_custom_prompt``), so a run measures VLMEvalKit's
prompting; our adapter keeps its own chat template, image preprocessing and decoding, exactly as in
``unitoken-eval run``.

``Local<Class>`` dataset variants: VLMEvalKit pins each benchmark TSV to an MD5 and downloads the file again
when ``$LMUData/<name>.tsv`` differs, so a locally built or subset TSV cannot be used under the benchmark's
name.  ``{"class": "LocalImageYORNDataset", "dataset": "MME"}`` is VLMEvalKit's own ``ImageYORNDataset``
(prompting and ``evaluate`` untouched) reading ``$LMUData/MME.tsv`` as it is, with no MD5 pin and no
download: a missing file is an error.  Only classes that use the base loader get a variant.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Optional, Union

from unitoken_eval.integrations.vlmeval import CLASS_NAME, LOCAL_PREFIX, require_vlmeval

require_vlmeval("unitoken_eval.integrations.vlmeval.model")

from PIL import Image  # noqa: E402
from vlmeval.dataset.image_base import ImageBaseDataset  # noqa: E402
from vlmeval.smp import LMUDataRoot  # noqa: E402
from vlmeval.vlm.base import BaseModel  # noqa: E402

from unitoken_eval.harness import registry  # noqa: E402
from unitoken_eval.harness.plugin import AdapterError, UnderstandRequest, parse_model_args  # noqa: E402

log = logging.getLogger("unitoken_eval.vlmeval")

DEFAULT_MAX_NEW_TOKENS = 512


def _open_image(path: str) -> Image.Image:
    """The image file VLMEvalKit dumped, in the mode our TSV reader gives (palette/alpha -> RGB)."""
    try:
        img = Image.open(path)
        img.load()
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path}: not a readable image ({exc})") from None
    if img.mode in ("RGBA", "P", "LA"):
        img = img.convert("RGB")
    return img


def task_max_new_tokens(dataset: Optional[str]) -> Optional[int]:
    """The answer length our task for VLMEvalKit dataset ``dataset`` asks for (MME: 16), if we have one."""
    if not dataset:
        return None
    for tid in registry.task_ids():
        try:
            cls = registry.task_class(tid)
        except registry.RegistryError:
            continue
        if getattr(cls, "tsv_name", None) == dataset and getattr(cls, "max_new_tokens", None):
            return int(cls.max_new_tokens)
    return None


class UniTokenEvalVLM(BaseModel):
    """A VLMEvalKit model answering through our adapter ``model`` (any id ``unitoken-eval list`` shows).

    Keys of the config entry: ``model`` (adapter id, default ``tiny``), ``model_args`` (our
    ``key=value,...`` string or a JSON object), ``max_new_tokens`` (default: what our task for that
    dataset uses, else 512), ``prompt_suffix`` (appended to the dataset's prompt, as our task option).
    """

    INTERLEAVE = False
    is_api = False

    def __init__(self, model: str = "tiny", model_args: Union[str, dict, None] = None,
                 max_new_tokens: Optional[int] = None, prompt_suffix: str = "", **unknown: Any):
        super().__init__()
        if unknown:
            raise AdapterError(f"{CLASS_NAME}: unknown config key(s) {sorted(unknown)}; it takes model, "
                               "model_args, max_new_tokens, prompt_suffix")
        args = parse_model_args(model_args) if isinstance(model_args, str) or model_args is None \
            else {str(k): str(v) for k, v in model_args.items()}
        self.adapter_id = model
        self.adapter = registry.adapter_class(model)(**args)
        if "understand" not in self.adapter.capabilities:
            raise AdapterError(f"{CLASS_NAME}: model {model} cannot answer questions about images")
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.prompt_suffix = str(prompt_suffix or "")
        self._ids = itertools.count()
        self._limits: dict[Optional[str], int] = {}
        log.info("%s: adapter %s, fingerprint %s", CLASS_NAME, model, self.adapter.fingerprint())

    def _limit(self, dataset: Optional[str]) -> int:
        if self.max_new_tokens:
            return self.max_new_tokens
        if dataset not in self._limits:
            self._limits[dataset] = task_max_new_tokens(dataset) or DEFAULT_MAX_NEW_TOKENS
        return self._limits[dataset]

    def generate_inner(self, message: list[dict[str, Any]], dataset: Optional[str] = None) -> str:
        kinds = {m["type"] for m in message}
        if kinds - {"text", "image"}:
            raise AdapterError(f"{CLASS_NAME}: {sorted(kinds - {'text', 'image'})} input is not supported")
        paths = [str(m["value"]) for m in message if m["type"] == "image"]
        prompt = "\n".join(str(m["value"]) for m in message if m["type"] == "text") + self.prompt_suffix
        req = UnderstandRequest(
            sample_id=f"{dataset or 'vlmeval'}:{next(self._ids)}",
            prompt=prompt,
            images=[_open_image(p) for p in paths],
            image_key="|".join(str(Path(p).resolve()) for p in paths) or None,
            max_new_tokens=self._limit(dataset),
        )
        (answer,) = self.adapter.understand([req])
        return answer


def local_dataset_class(base: type) -> type:
    """``Local<base>``: VLMEvalKit's ``base`` reading ``$LMUData/<dataset>.tsv`` unchecked, never downloading."""

    def load_data(self, dataset):
        path = Path(LMUDataRoot()) / f"{dataset}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {LOCAL_PREFIX}{base.__name__} reads the local TSV "
                                    f"and never downloads (use {base.__name__} to fetch the published file)")
        # prepare_tsv with no MD5 keeps an existing file as is (and localises files over 1 GB as VK does).
        return self.prepare_tsv(str(path), file_md5=None)

    name = f"{LOCAL_PREFIX}{base.__name__}"
    return type(name, (base,), {"load_data": load_data, "__module__": __name__,
                                "__doc__": f"{base.__name__} on the local $LMUData TSV (no MD5 pin, no download)."})


def register() -> dict[str, list[str]]:
    """Make our class and the ``Local*`` datasets resolvable by name in vlmeval; returns what was added."""
    import vlmeval.dataset
    import vlmeval.vlm

    setattr(vlmeval.vlm, CLASS_NAME, UniTokenEvalVLM)
    added = []
    for name in sorted(dir(vlmeval.dataset)):
        cls = getattr(vlmeval.dataset, name)
        if (isinstance(cls, type) and issubclass(cls, ImageBaseDataset) and not name.startswith(LOCAL_PREFIX)
                and getattr(cls, "load_data", None) is ImageBaseDataset.load_data):
            local = local_dataset_class(cls)
            setattr(vlmeval.dataset, local.__name__, local)
            added.append(local.__name__)
    return {"models": [CLASS_NAME], "datasets": added}
