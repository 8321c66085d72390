"""T2I-CompBench++ validation prompts: where they come from, how they are checked, how they are read.

The package ships none of upstream's prompt files.  They are fetched once from the official repository at a
pinned commit into ``~/.cache/unitoken-eval/t2i_compbench/`` and checked against the sha256 recorded here, so
a run always states exactly which prompts it used.  ``color_val.txt`` changed upstream on 2025-09-03 (commit
3310c2f, four duplicated prompts replaced); both versions are supported and results name the one used.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from unitoken_eval.harness.remote import announce
from unitoken_eval.harness.store import sha256_file
from unitoken_eval.harness.plugin import TaskError

REPO = "Karine-Huang/T2I-CompBench"
COMMIT = "1b7094991a57f3c22abdd4f6e8ba6c1a15517073"
# The parent of 3310c2f ("update color_val.txt, remove duplicates"): the colour file most published numbers used.
COLOR_BEFORE_COMMIT = "7728deac05e17903b3145befd9b7207c7c019573"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/examples/dataset/{name}"

CATEGORIES = ("color", "shape", "texture", "spatial", "3d_spatial", "non_spatial", "complex", "numeracy")

# sha256 of the upstream files (bytes as committed, CRLF line ends included).
SHA256 = {
    ("color_val.txt", "current"): "1634259756dbc77d13093d907d414480080ec9790a8c97ad09efaea7b2534f2d",
    ("color_val.txt", "before-3310c2f"): "1e37a12c1861bf6b11623eaffb0bf6d6eeea9702caf45b95d040f1721bba7f4f",
    ("shape_val.txt", "current"): "37e1a276906c7ea9516cbd7ac8501be896006c0c17ca7344f260562834455bae",
    ("texture_val.txt", "current"): "fbb5363515b4a28009e360afaaaf389d2dd2289e50dbb0c6ef4ea0c7fe4f3d4f",
    ("spatial_val.txt", "current"): "8707a1d7e42ce3002d95363cf55f74bd043c843ae27108f5125aaaa7840ca988",
    ("3d_spatial_val.txt", "current"): "c9953597315f36a5fcb41291bb19bdc6ab5f64a0fa760d691b4854a73f5d1fe9",
    ("non_spatial_val.txt", "current"): "04c56cc9ac441dc9ea6c5157652058bd1635b5308526dd31bb29a1caab9a758d",
    ("complex_val.txt", "current"): "1b808018b8d9916db3d47d5aa2ef18377a3549a56901a474156f799824cdf3b4",
    ("complex_val_spatial.txt", "current"): "6c7ac0ab75c7c9080cfc7b421fb059b9b0febb98471707aeedf58771088abc02",
    ("complex_val_action.txt", "current"): "d49ee4c7f99e3f3379fb8704a54ff5288b83bb412971edf616a4721c2473308e",
    ("complex_val_spatialaction.txt", "current"): "e02ddc7fed812e6577e7386ec2137ce0a994a5ce19771661f68df7ac349a6ca9",
    ("numeracy_val.txt", "current"): "dad8df141604b70ba7554bec724e3db0a80023680769b5c514854ea2d2527bbe",
    ("new_objects.txt", "current"): "f39a3d2ff6067d7738673cbf465dc659ccc750776162989a5d9916f1d5f3e231",
}
COLOR_VERSIONS = ("current", "before-3310c2f")
# What each version is called on disk in the cache (and in the copies the tests read).
_CACHE_NAME = {"current": "{name}", "before-3310c2f": "{stem}.before-3310c2f.txt"}


def val_file(category: str) -> str:
    if category not in CATEGORIES:
        raise TaskError(f"unknown T2I-CompBench++ category {category!r}; choose from {', '.join(CATEGORIES)}")
    return f"{category}_val.txt"


def cache_dir() -> Path:
    root = os.environ.get("UNITOKEN_EVAL_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "unitoken-eval"
    return base / "t2i_compbench"


def cache_name(name: str, version: str = "current") -> str:
    return _CACHE_NAME[version].format(name=name, stem=name[: -len(".txt")])


def _url(name: str, version: str) -> str:
    commit = COLOR_BEFORE_COMMIT if version == "before-3310c2f" else COMMIT
    return RAW_URL.format(repo=REPO, commit=commit, name=name)


def official_file(name: str, version: str = "current", fetch: bool = True) -> Path:
    """The verified local copy of an official file, fetched on first use."""
    if (name, version) not in SHA256:
        raise TaskError(f"no official T2I-CompBench++ file {name!r} (version {version!r})")
    want = SHA256[(name, version)]
    path = cache_dir() / cache_name(name, version)
    if path.exists():
        got = sha256_file(path)
        if got == want:
            return path
        raise TaskError(
            f"{path}: sha256 {got} does not match the official {name} ({version}) {want}; delete the file to re-fetch"
        )
    if not fetch:
        raise TaskError(f"{path} is missing (the official {name}); it is fetched from {_url(name, version)} on first use")
    url = _url(name, version)
    announce(url, f"T2I-CompBench++ official file {name}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise TaskError(
            f"cannot fetch {url} ({exc}); download it yourself to {path}, or pass the prompt file with "
            f"--data <task>=PATH"
        ) from None
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise TaskError(f"{url}: sha256 {got} does not match the recorded {want}; refusing to use it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def read_prompt_file(path: Path) -> list[str]:
    """Prompts as upstream's generator reads them: ``splitlines()``, then the text before any tab.

    Blank lines are kept out (upstream would generate for an empty prompt; no official file has one).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"prompt file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        prompt = line.strip("\n").split("\t")[0]
        if not prompt.strip():
            continue
        check_prompt(prompt, f"{path}:{lineno}")
        out.append(prompt)
    if not out:
        raise TaskError(f"{path}: no prompts")
    return out


def check_prompt(prompt: str, where: str) -> None:
    """Refuse prompts the official ``{prompt}_{NNNNNN}.png`` naming cannot carry back to the scorer."""
    if "_" in prompt:
        raise TaskError(f"{where}: prompt contains '_', which the official scorers' split('_')[0] would cut")
    if "/" in prompt or "\0" in prompt or "\\" in prompt:
        raise TaskError(f"{where}: prompt contains a path separator; it cannot be an official image file name")
    if len(prompt.encode("utf-8")) > 230:
        raise TaskError(f"{where}: prompt is longer than a file name may be ({len(prompt.encode())} bytes)")


def complex_key(prompt: str) -> str:
    """How 3_in_1.py compares prompts across the complex files: text before the first '.', lower-cased."""
    return prompt.strip("\n").split(".")[0].lower()


@dataclass
class PromptSet:
    """The prompts of one category and where they came from (recorded in results)."""

    category: str
    prompts: list[str]
    path: str
    sha256: str
    version: Optional[str]  # "current" / "before-3310c2f" for official files, None for a user file
    complex_spatial: Optional[set[str]] = None
    complex_action: Optional[set[str]] = None
    object_pairs: Optional[list[tuple[str, str]]] = None  # numeracy: (singular, plural) from new_objects.txt

    def describe(self) -> dict:
        d = {"prompt_file": self.path, "prompt_file_sha256": self.sha256}
        if self.version is not None:
            d["prompt_file_version"] = self.version
            d["official_commit"] = COLOR_BEFORE_COMMIT if self.version == "before-3310c2f" else COMMIT
        return d


def read_object_pairs(path: Path) -> list[tuple[str, str]]:
    """new_objects.txt: ``singular - plural`` per line, lower-cased as numeracy_eval.py reads it."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if " - " not in line:
            raise TaskError(f"{path}:{lineno}: expected 'singular - plural'")
        s, p = line.split(" - ")[0], line.split(" - ")[1]
        pairs.append((s.strip().lower(), p.strip().lower()))
    return pairs


def _side_file(source_dir: Optional[Path], name: str, version: str = "current") -> Path:
    if source_dir is not None:
        for candidate in (source_dir / name, source_dir / cache_name(name, version)):
            if candidate.exists():
                return candidate
    return official_file(name, version)


def load_prompts(category: str, source: Optional[str] = None, color_version: str = "current") -> PromptSet:
    """The prompts of ``category``: official (cached, verified) when ``source`` is None, else a user path.

    ``source`` may be a prompt file or a directory laid out like upstream's ``examples/dataset``.  The complex
    category also needs ``complex_val_spatial.txt`` / ``complex_val_action.txt`` and numeracy needs
    ``new_objects.txt``: taken from the same directory when present there, else the official copies.
    """
    if color_version not in COLOR_VERSIONS:
        raise TaskError(f"color_file_version must be one of {', '.join(COLOR_VERSIONS)}, not {color_version!r}")
    name = val_file(category)
    version = color_version if category == "color" else "current"
    source_dir: Optional[Path] = None
    if source is None:
        path = official_file(name, version)
        file_version: Optional[str] = version
    else:
        p = Path(source).expanduser()
        if p.is_dir():
            source_dir = p
            path = p / (cache_name(name, version) if version != "current" else name)
            if not path.exists():
                raise TaskError(f"{p} has no {path.name} (expected upstream's examples/dataset layout)")
        elif p.exists():
            path = p
            source_dir = p.parent
        else:
            raise TaskError(f"prompt source {source} does not exist")
        digest = sha256_file(path)
        file_version = next((v for (n, v), h in SHA256.items() if n == name and h == digest), None)
    prompts = read_prompt_file(path)
    ps = PromptSet(category, prompts, str(path), sha256_file(path), file_version)
    if category == "complex":
        ps.complex_spatial = {complex_key(x) for x in read_prompt_file(_side_file(source_dir, "complex_val_spatial.txt"))}
        ps.complex_action = {complex_key(x) for x in read_prompt_file(_side_file(source_dir, "complex_val_action.txt"))}
    if category == "numeracy":
        ps.object_pairs = read_object_pairs(_side_file(source_dir, "new_objects.txt"))
    return ps


def complex_kind(prompt: str, spatial: set[str], action: set[str]) -> str:
    """3_in_1.py's test order: a prompt in the spatial file is 'spatial', else in the action file 'action',
    else 'spatial_action' (all three scores)."""
    key = complex_key(prompt)
    if key in spatial:
        return "spatial"
    if key in action:
        return "action"
    return "spatial_action"
