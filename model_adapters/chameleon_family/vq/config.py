"""Meta's VQ-GAN release on disk: ``vqgan.yaml`` (taming-transformers config) + ``vqgan.ckpt`` (torch pickle).

Reading is strict on purpose: the official code loads this checkpoint with ``strict=False``, so a missing
key silently stays random and the model still "works"; here every missing, unexpected or mis-shaped key is
named.  Pickles are opened only with ``torch.load(weights_only=True)``; a checkpoint that needs other
globals (a Lightning callback, say) is refused with the way to convert it once to safetensors.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

CONFIG_FILE = "vqgan.yaml"
CKPT_FILE = "vqgan.ckpt"
SAFETENSORS_FILE = "vqgan.safetensors"
# training-only parameters of the taming checkpoint (LPIPS + discriminator); not part of the tokenizer
IGNORED_PREFIXES = ("loss.",)


class VQGANLoadError(Exception):
    """The VQ-GAN files are missing, malformed or do not match; the message names the file and key."""


@dataclass
class VQGANConfig:
    """``model.params`` of vqgan.yaml: the ``ddconfig`` shared by encoder and decoder, plus the codebook."""

    ch: int = 128
    out_ch: int = 3
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 256
    resolution: int = 512
    in_channels: int = 3
    double_z: bool = False
    dropout: float = 0.0
    attn_type: str = "vanilla"
    resamp_with_conv: bool = True
    n_embed: int = 8192
    embed_dim: int = 256
    extra: dict[str, Any] = field(default_factory=dict)  # ddconfig keys we do not interpret, kept for writing

    _DD_KEYS = (
        "ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions", "z_channels", "resolution",
        "in_channels", "double_z", "dropout", "attn_type", "resamp_with_conv",
    )

    @classmethod
    def from_ddconfig(cls, ddconfig: Mapping[str, Any], n_embed: int, embed_dim: int, source: str = "ddconfig") -> "VQGANConfig":
        required = ("ch", "ch_mult", "num_res_blocks", "z_channels", "resolution", "in_channels")
        for key in required:
            if key not in ddconfig:
                raise VQGANLoadError(f"{source}: ddconfig has no {key!r}")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in ddconfig.items():
            if key in cls._DD_KEYS:
                kwargs[key] = value
            else:
                extra[key] = value
        kwargs["ch_mult"] = tuple(int(x) for x in kwargs["ch_mult"])
        kwargs["attn_resolutions"] = tuple(int(x) for x in (kwargs.get("attn_resolutions") or ()))
        if kwargs.get("attn_type", "vanilla") not in ("vanilla", "none"):
            raise VQGANLoadError(f"{source}: attn_type {kwargs['attn_type']!r} is not supported (vanilla or none)")
        if kwargs.get("resamp_with_conv", True) is not True:
            raise VQGANLoadError(f"{source}: resamp_with_conv=false is not supported")
        cfg = cls(**kwargs, n_embed=int(n_embed), embed_dim=int(embed_dim), extra=extra)
        if cfg.ch % 32:
            raise VQGANLoadError(f"{source}: ch={cfg.ch} is not a multiple of 32 (GroupNorm has 32 groups)")
        return cfg

    @classmethod
    def from_yaml(cls, path: Path) -> "VQGANConfig":
        try:
            doc = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise VQGANLoadError(f"VQ-GAN config {path} does not exist") from None
        except yaml.YAMLError as e:
            raise VQGANLoadError(f"{path}: not valid YAML ({e})") from None
        try:
            params = doc["model"]["params"]
            ddconfig = params["ddconfig"]
            n_embed, embed_dim = params["n_embed"], params["embed_dim"]
        except (KeyError, TypeError) as e:
            raise VQGANLoadError(
                f"{path}: expected a taming-transformers config with model.params.{{ddconfig,n_embed,embed_dim}} "
                f"(missing {e})"
            ) from None
        return cls.from_ddconfig(ddconfig, n_embed, embed_dim, source=str(path))

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def ddconfig(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k in self._DD_KEYS}
        d["ch_mult"] = list(self.ch_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        d.update(self.extra)
        return d

    def to_yaml_doc(self) -> dict[str, Any]:
        """The taming-style document Meta's release ships (the loss config only for completeness)."""
        return {
            "model": {
                "base_learning_rate": 4.5e-06,
                "target": "taming.models.vqgan.VQModel",
                "params": {
                    # Meta's file names the training-time checkpoint path here; loading never follows it
                    "ckpt_path": "/checkpoint/vqgan/last.ckpt",
                    "embed_dim": self.embed_dim,
                    "n_embed": self.n_embed,
                    "ddconfig": self.ddconfig(),
                    "lossconfig": {
                        "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                        "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 0,
                                   "disc_weight": 0.8, "codebook_weight": 1.0},
                    },
                },
            }
        }

    def transformers_vq_config(self):
        """The equivalent transformers ``ChameleonVQVAEConfig`` (its encoder/quantizer share Meta's key names)."""
        from transformers.models.chameleon.configuration_chameleon import ChameleonVQVAEConfig

        return ChameleonVQVAEConfig(
            embed_dim=self.embed_dim,
            num_embeddings=self.n_embed,
            double_latent=self.double_z,
            latent_channels=self.z_channels,
            resolution=self.resolution,
            in_channels=self.in_channels,
            base_channels=self.ch,
            channel_multiplier=list(self.ch_mult),
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=list(self.attn_resolutions),
            dropout=self.dropout,
            attn_type=self.attn_type,
        )


def _conversion_hint(path: Path) -> str:
    out = path.with_name(SAFETENSORS_FILE)
    return (
        f"convert it once, in an environment where you trust the file, with: python -c \"import torch, "
        f"safetensors.torch as s; sd = torch.load('{path}', map_location='cpu', weights_only=False)['state_dict']; "
        f"s.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{out}')\" -- {out.name} beside "
        f"{CONFIG_FILE} is then used instead of {path.name}"
    )


class _InertMetadata(dict):
    """Stand-in for training bookkeeping objects pickled beside the weights (Lightning callbacks, hparams).

    The unpickler builds this instead of the named class, so none of that class's code runs; its state is
    dropped.  Being a dict lets dict-subclass metadata (AttributeDict) unpickle too.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        pass


# Fully qualified names of training metadata that Lightning/taming checkpoints carry next to ``state_dict``;
# only these are allowlisted, each mapped to the inert stand-in above.
METADATA_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "argparse.Namespace",
)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a taming checkpoint, opened with ``weights_only=True`` (or a safetensors file)."""
    path = Path(path)
    if not path.is_file():
        raise VQGANLoadError(f"VQ-GAN weights {path} do not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        with torch.serialization.safe_globals([(_InertMetadata, name) for name in METADATA_GLOBALS]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("Check the documentation")[0].strip()
        raise VQGANLoadError(
            f"{path}: refused to unpickle: it needs globals that are not plain tensors/containers "
            f"({first[-400:]}); {_conversion_hint(path)}"
        ) from None
    except Exception as e:  # a truncated or non-torch file
        raise VQGANLoadError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VQGANLoadError(f"{path}: expected a dict with a 'state_dict' of tensors")
    return dict(obj)


def find_weights(vqgan_dir: Path) -> Path:
    """``vqgan.safetensors`` when present (converted once), else Meta's ``vqgan.ckpt``."""
    vqgan_dir = Path(vqgan_dir)
    if not vqgan_dir.is_dir():
        raise VQGANLoadError(f"VQ-GAN directory {vqgan_dir} does not exist (expected {CONFIG_FILE} + {CKPT_FILE})")
    for name in (SAFETENSORS_FILE, CKPT_FILE):
        if (vqgan_dir / name).is_file():
            return vqgan_dir / name
    raise VQGANLoadError(f"{vqgan_dir} has no {CKPT_FILE} (nor {SAFETENSORS_FILE}): the VQ-GAN weights are missing")


def check_state_dict(
    got: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Return ``got`` minus training-only keys, or raise naming every missing/unexpected/mis-shaped key."""
    kept = {k: v for k, v in got.items() if not k.startswith(IGNORED_PREFIXES)}
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(kept[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in set(kept) & set(expected)
        if tuple(kept[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append(f"shape mismatches {shapes}")
    if problems:
        raise VQGANLoadError(f"{source} does not match its {CONFIG_FILE}: " + "; ".join(problems))
    return kept
