"""Training configuration: one TOML file, every field with its default here."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InputError


@dataclass
class TrainConfig:
    datasets: list[str] = field(default_factory=list)  # folders written by `fgbg prepare`
    output_dir: str = "runs/fgbg"
    stage: int = 1  # 1: frames (spatial layers, encoders); 2: clips (temporal blocks)
    init: str = "scratch"  # "scratch" | a pipeline folder (converted AnimateAnyone, earlier run)
    model_size: str = "tiny"  # scratch only: "tiny" | "sd15" (fgbg.diffusion.build)
    resolution: int = 64  # square training crops, pixels (multiple of 64)
    frames: int = 8  # stage 2 clip length (stage 1 uses 1)
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_steps: int = 1000
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    gradient_checkpointing: bool = False
    cond_prob: float = 0.5  # share of samples given the previous-frame condition
    uncond_prob: float = 0.1  # share trained without the reference (for classifier-free guidance)
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: no sample videos during training
    sample_steps: int = 10
    log_every: int = 10
    fixed_batch: bool = False  # every step sees batch 0 (tests: the loss must fall)
    # encode every frame of the datasets once with the frozen VAE (at `resolution`) and read the
    # latents from there: the same numbers as encoding per step, without the per-step VAE cost
    precompute_latents: bool = False
    latent_cache: str = ""  # where those latents go ("": <output_dir>/latents)

    def check(self) -> "TrainConfig":
        def bad(what, cause, hint):
            raise InputError(what, cause=cause, hint=hint)

        if self.stage not in (1, 2):
            bad(f"stage = {self.stage}", "training has stage 1 (frames) and stage 2 (clips)", "set stage = 1 or 2")
        if self.resolution % 64 or self.resolution <= 0:
            bad(f"resolution = {self.resolution}", "the model works on multiples of 64 pixels",
                f"set resolution = {max(64, round(self.resolution / 64) * 64)}")
        if not self.datasets:
            bad("no datasets in the config", "training needs at least one folder from `fgbg prepare`",
                'add datasets = ["path/to/dataset"]')
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            bad(f"mixed_precision = {self.mixed_precision!r}", "accelerate takes no, fp16 or bf16",
                'set mixed_precision = "bf16" on a recent GPU, "no" on the CPU')
        if not 2 <= self.frames <= 32 and self.stage == 2:
            bad(f"frames = {self.frames}", "clips hold 2..32 frames (the temporal table)", "set frames = 16")
        return self


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"no config file {path}", cause="the file does not exist",
                         hint="see configs/train/ for examples") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"cannot read {path}", cause=f"TOML error: {exc}", hint="fix the file's syntax") from None
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"unknown keys in {path}: {', '.join(unknown)}",
                         cause=f"the keys are: {', '.join(sorted(known))}", hint="remove or rename them")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    # paths are relative to the working directory, as in other training scripts
    return TrainConfig(**raw).check()
