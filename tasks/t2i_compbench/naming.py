"""The official image naming: ``samples/{prompt}_{NNNNNN}.png`` with one running counter over a category.

Upstream's generator (GORS_finetune/inference_eval.py @1b70949) names image ``n`` of the whole category
``f"{prompt}_{n:06}.png"``; every scorer recovers the prompt with ``file_name.split('_')[0]`` and orders files
by the number after the last '_'.  Writing the same names lets the official scripts re-score our folders.
"""

from __future__ import annotations

import re
from pathlib import Path

from unitoken_eval.harness.plugin import TaskError

SAMPLES_DIR = "samples"
_NAME = re.compile(r"^(?P<prompt>.*)_(?P<counter>\d+)\.png$", re.S)


def image_name(prompt: str, counter: int) -> str:
    return f"{prompt}_{counter:06}.png"


def image_relpath(prompt: str, counter: int) -> str:
    return f"{SAMPLES_DIR}/{image_name(prompt, counter)}"


def counter_for(line_index: int, k: int, images_per_prompt: int) -> int:
    """The running counter of image ``k`` of the prompt on line ``line_index`` when the category is generated
    in file order with ``images_per_prompt`` images each (upstream's ``base_count``)."""
    return line_index * images_per_prompt + k


def prompt_from_name(file_name: str) -> str:
    """What the official scorers read back as the prompt: the text before the first '_'."""
    return Path(file_name).name.split("_")[0]


def counter_from_name(file_name: str) -> int:
    m = _NAME.match(Path(file_name).name)
    if not m:
        raise TaskError(f"{file_name}: not an official T2I-CompBench image name ('{{prompt}}_{{NNNNNN}}.png')")
    return int(m.group("counter"))


def samples_folder(images_dir: Path) -> Path:
    """Accept the run's output folder (holding ``samples/``) or the ``samples`` folder itself."""
    images_dir = Path(images_dir)
    if (images_dir / SAMPLES_DIR).is_dir():
        return images_dir / SAMPLES_DIR
    if images_dir.is_dir():
        return images_dir
    raise TaskError(f"image folder {images_dir} does not exist")


def index_folder(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    """prompt -> [(counter, path)] sorted by counter, for every official-looking PNG in ``folder``."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        if path.suffix.lower() != ".png" or not path.is_file():
            continue
        if not _NAME.match(path.name):
            continue
        out.setdefault(prompt_from_name(path.name), []).append((counter_from_name(path.name), path))
    for v in out.values():
        v.sort(key=lambda t: t[0])
    return out
