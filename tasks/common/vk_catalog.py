"""Where VLMEvalKit publishes each understanding benchmark's TSV, with its MD5.

Read from the dataset classes of open-compass/VLMEvalKit e8e78f05f3080fe28154f2130321f17951c3be94:
ImageMCQDataset / MMMUDataset (vlmeval/dataset/image_mcq.py), ImageYORNDataset (image_yorn.py),
OCRBench / MathVista / MMVet (image_vqa.py): their DATASET_URL and DATASET_MD5 tables.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from unitoken_eval.harness.remote import announce
from unitoken_eval.harness.store import file_digest
from unitoken_eval.harness.plugin import TaskError

_BASE = "https://opencompass.openxlab.space/utils"


@dataclass(frozen=True)
class VKData:
    name: str
    url: str
    md5: str


CATALOG: dict[str, VKData] = {d.name: d for d in [
    VKData("MMMU_DEV_VAL", f"{_BASE}/VLMEval/MMMU_DEV_VAL.tsv", "585e8ad75e73f75dcad265dfd0417d64"),
    VKData("MMBench_DEV_EN", f"{_BASE}/benchmarks/MMBench/MMBench_DEV_EN.tsv", "b6caf1133a01c6bb705cf753bb527ed8"),
    VKData("MMBench_DEV_CN", f"{_BASE}/benchmarks/MMBench/MMBench_DEV_CN.tsv", "08b8fc3324a5ed74155350f57be69fbd"),
    VKData("SEEDBench_IMG", f"{_BASE}/benchmarks/SEEDBench/SEEDBench_IMG.tsv", "68017231464752261a2526d6ca3a10c0"),
    VKData("MMStar", f"{_BASE}/VLMEval/MMStar.tsv", "e1ecd2140806c1b1bbf54b43372efb9e"),
    VKData("MathVista_MINI", f"{_BASE}/VLMEval/MathVista_MINI.tsv", "f199b98e178e5a2a20e7048f5dcb0464"),
    VKData("HallusionBench", f"{_BASE}/VLMEval/HallusionBench.tsv", "0c23ac0dc9ef46832d7a24504f2a0c7c"),
    VKData("AI2D_TEST", f"{_BASE}/VLMEval/AI2D_TEST.tsv", "0f593e0d1c7df9a3d69bf1f947e71975"),
    # the unmasked AI2D test set (ai2d_test option variant: no_mask); not the leaderboard's version
    VKData("AI2D_TEST_NO_MASK", f"{_BASE}/VLMEval/AI2D_TEST_NO_MASK.tsv", "fd8f463634d4fe9fbd23b876e8eea5be"),
    VKData("OCRBench", f"{_BASE}/VLMEval/OCRBench.tsv", "e953d98a987cc6e26ef717b61260b778"),
    VKData("MME", f"{_BASE}/VLMEval/MME.tsv", "b36b43c3f09801f5d368627fb92187c3"),
    VKData("MMVet", f"{_BASE}/VLMEval/MMVet.tsv", "748aa6d4aa9d4de798306a63718455e3"),
]}


def md5_file(path: str | Path) -> str:
    """The MD5 VLMEvalKit publishes for its TSVs."""
    return file_digest(path, "md5")


def verify_md5(path: str | Path, md5: str) -> None:
    """Raise TaskError naming the file and both digests unless ``path`` has MD5 ``md5``."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path} does not exist")
    got = md5_file(path)
    if got != md5.lower():
        raise TaskError(f"{path}: MD5 {got} does not match the published {md5} (corrupt or different version)")


def fetch_tsv(name: str, dest_dir: Path, url: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Download ``name``'s TSV into ``dest_dir`` (temporary file, MD5 checked, then renamed); TLS stays verified."""
    entry = CATALOG[name]
    dest_dir = Path(dest_dir)
    dest = dest_dir / f"{name}.tsv"
    if dest.is_file():
        verify_md5(dest, entry.md5)
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest_dir, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        announce(url or entry.url, f"VLMEvalKit TSV {name}")
        try:
            with urllib.request.urlopen(url or entry.url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, tmp)
        except OSError as exc:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise TaskError(f"cannot download {url or entry.url}: {exc}") from None
    try:
        verify_md5(tmp_path, entry.md5)
    except TaskError:
        tmp_path.unlink(missing_ok=True)
        raise
    tmp_path.replace(dest)
    return dest
