"""The training loop (HF Accelerate): the same code on the CPU, one GPU, or `accelerate launch`
across GPUs and nodes.

Per step: VAE-encode the window and the reference (frozen VAE), CLIP-embed the reference (frozen),
run the ReferenceNet (its bank stays in the graph), add noise at a random timestep (DDPM with the
AnimateAnyone schedule: v-prediction, zero terminal SNR), predict v with the denoising UNet given
pose + track features and, for `cond_prob` of the samples, the clean latent of the window's first
frame as the conditioning latent (mask 1 there: what clip chaining gives at inference); samples
drawn for `uncond_prob` get a zero CLIP embedding and no reference attention (classifier-free
guidance). Loss: MSE on v.

Exact resume: batches and noise are pure functions of (seed, step); Accelerate's checkpoint holds
the weights, the optimizer, the LR schedule and the RNG states; `trainer_state.json` the step.

Several processes (`accelerate launch`): `batch_size` is per process, so a step's global batch is
batch_size x processes samples (x gradient_accumulation_steps per optimizer step). The global batch
of a step, its noise and its timesteps are drawn the same way whatever the number of processes;
process r renders and trains rows r*batch_size..(r+1)*batch_size-1 of it. So N processes with
batch_size B compute what one process with batch_size N*B computes (up to the order of float sums
in the gradient all-reduce), the LR schedule counts optimizer steps, and metrics.jsonl logs the loss
of the global batch (the mean over processes).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from .config import TrainConfig
from ..artifacts import load_prepared
from .data import dataset_summary, plan_batch, render_batch


class TrainModel(nn.Module):
    """The trainable networks in one module, so Accelerate/DDP wraps one thing whose forward is
    the whole conditional prediction."""

    def __init__(self, reference_net, unet, pose_encoder, track_encoder):
        super().__init__()
        self.reference_net, self.unet = reference_net, unet
        self.pose_encoder, self.track_encoder = pose_encoder, track_encoder

    def forward(self, noisy, timesteps, clip_embeds, ref_latents, keep_ref, condition, pose, tracks):
        """keep_ref (B,) bool, rows with False first (they skip reference attention)."""
        n_plain = int((~keep_ref).sum())
        state = None
        if n_plain < len(keep_ref):
            state = self.reference_net.encode(ref_latents[n_plain:], clip_embeds[n_plain:])
        feats = self.pose_encoder(pose) + self.track_encoder(tracks)
        return self.unet(noisy, timesteps, clip_embeds, condition=condition, features=feats,
                         reference=state, plain_batches=n_plain)


def trainable_parameters(model: TrainModel, stage: int) -> list[nn.Parameter]:
    """Stage 1: everything but the temporal blocks. Stage 2: only the temporal blocks."""
    params = []
    for name, p in model.named_parameters():
        temporal = ".motion_modules." in name
        train = temporal if stage == 2 else not temporal
        p.requires_grad_(train)
        if train:
            params.append(p)
    return params


def _noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                         steps_offset=1, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                         timestep_spacing="trailing")


def load_components(cfg: TrainConfig):
    from ..diffusion.backends_util import quiet_diffusers
    from ..diffusion.build import build_pipeline
    from ..diffusion.pipeline import FgbgPipeline

    quiet_diffusers()
    if cfg.init == "scratch":
        return build_pipeline(cfg.model_size, seed=cfg.seed)
    folder = Path(cfg.init).expanduser()
    if not (folder / "model_index.json").is_file():
        raise InputError(f"init = {cfg.init!r} is not a pipeline folder", cause="no model_index.json there",
                         hint='set init = "scratch", or a folder from `fgbg models convert` or an earlier run')
    return FgbgPipeline.from_pretrained(folder)


def _checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints (trainer_state.json is written last), oldest first."""
    return sorted((p for p in (out / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()),
                  key=lambda p: int(p.name.split("-")[1]))


def train(cfg: TrainConfig, resume: bool = False, progress=None, log=print) -> Path:
    """Run (or resume) one training stage; returns the folder of the final pipeline."""
    import os

    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    out = Path(cfg.output_dir)
    # No dataloader here (batches come from plan_batch): split_batches=True only makes the prepared
    # LR scheduler step once per optimizer step; without it, it steps num_processes times.
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise InputError(f"{launched} processes were launched, but Accelerate runs "
                         f"{accelerator.num_processes} process(es) together",
                         cause="with no GPU and no ACCELERATE_USE_CPU=1, each process would train alone and "
                               "all of them would write the same output_dir",
                         hint="on the CPU: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N "
                              "-m fgbg.cli train CONFIG")
    if not accelerator.is_main_process:  # one process reports
        log, progress = (lambda *a: None), None
    torch.manual_seed(cfg.seed)
    pipe = load_components(cfg)
    videos = load_prepared(cfg.datasets, min_frames=cfg.frames if cfg.stage == 2 else 1)
    frames = cfg.frames if cfg.stage == 2 else 1
    model = TrainModel(pipe.reference_net, pipe.unet, pipe.pose_encoder, pipe.track_encoder).float()
    model.train()
    params = trainable_parameters(model, cfg.stage)
    if cfg.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    vae, clip = pipe.vae.requires_grad_(False).eval(), pipe.image_encoder.requires_grad_(False).eval()
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup_steps)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    model, opt, lr_sched = accelerator.prepare(model, opt, lr_sched)
    vae.to(accelerator.device)
    clip.to(accelerator.device)
    noise_sched = _noise_scheduler()
    start = 0
    if resume:
        found = _checkpoints(out)
        if not found:
            raise InputError(f"nothing to resume in {out}", cause="no checkpoints/step-* folder there",
                             hint="run without --resume to start, or point output_dir at the earlier run")
        accelerator.load_state(str(found[-1]))
        start = json.loads((found[-1] / "trainer_state.json").read_text())["step"]
        log(f"resumed at step {start} from {found[-1]}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(vars(cfg), indent=1, sort_keys=True))
        log(f"stage {cfg.stage}: {dataset_summary(videos)}; {sum(p.numel() for p in params):,} trainable "
            f"parameters; {accelerator.num_processes} process(es) on {accelerator.device}")
    metrics_log = out / "metrics.jsonl"
    t0 = time.perf_counter()
    size = cfg.resolution
    sf = vae.config.scaling_factor
    rank, world = accelerator.process_index, accelerator.num_processes
    cache = None
    if cfg.precompute_latents:
        cache = latent_cache(videos, vae, size, Path(cfg.latent_cache or out / "latents"), log=log)
    total = cfg.batch_size * world  # the global batch of one step
    mine = range(rank * cfg.batch_size, (rank + 1) * cfg.batch_size)
    for step in range(start, cfg.max_steps):
        # every process draws the same global batch (seed, step) and renders its own rows of it
        draw = 0 if cfg.fixed_batch else step
        plan = plan_batch(videos, draw, seed=cfg.seed, batch_size=total, frames=frames,
                          cond_prob=cfg.cond_prob, uncond_prob=cfg.uncond_prob)
        # global positions, reference-less rows first; noise row p and timestep p go with the sample at
        # position p, whichever process trains it (this process's rows, kept in this order, are its
        # reference-less rows first too)
        order = np.argsort(~plan["drop_ref"], kind="stable")
        pos = np.array([p for p, i in enumerate(order) if mine.start <= i < mine.stop], np.int64)
        b = render_batch(videos, plan, order[pos], frames=frames, size=size)
        dev = accelerator.device
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + draw)
        with accelerator.accumulate(model):
            with torch.no_grad():
                ref = torch.from_numpy(b["ref"]).to(dev).permute(0, 3, 1, 2).float() / 255
                if cache is None:
                    target = torch.from_numpy(b["target"]).to(dev).permute(0, 1, 4, 2, 3).float() / 255
                    bs, nf = target.shape[:2]
                    lat = vae.encode(target.flatten(0, 1) * 2 - 1).latent_dist.mean * sf
                    ref_lat = vae.encode(ref * 2 - 1).latent_dist.mean * sf
                else:
                    rows = order[pos]
                    bs, nf = len(rows), b["target"].shape[1]
                    lat = torch.from_numpy(np.concatenate([
                        cache[plan["video"][i]][plan["start"][i]:plan["start"][i] + nf] for i in rows])).to(dev)
                    ref_lat = torch.from_numpy(np.stack([cache[plan["video"][i]][plan["ref"][i]]
                                                         for i in rows])).to(dev)
                lat = lat.reshape(bs, nf, *lat.shape[1:]).permute(0, 2, 1, 3, 4)  # B C F h w
                embeds = clip(_clip_pixels(ref, clip.config.image_size)).image_embeds[:, None]
                keep = torch.from_numpy(~b["drop_ref"]).to(dev)
                embeds = embeds * keep[:, None, None]
                idx = torch.from_numpy(pos)
                noise = torch.randn((total, *lat.shape[1:]), generator=g)[idx].to(dev)
                t = torch.randint(0, noise_sched.config.num_train_timesteps, (total,), generator=g)[idx].to(dev)
                noisy = noise_sched.add_noise(lat, noise, t)
                v_target = noise_sched.get_velocity(lat, noise, t)
                c = lat.shape[1]
                cond = torch.zeros(bs, c + 1, nf, *lat.shape[-2:], device=dev)
                on = torch.from_numpy(b["cond"]).to(dev)
                cond[on, :c, 0] = lat[on, :, 0]
                cond[on, c, 0] = 1
                pose = torch.from_numpy(b["pose"]).to(dev).permute(0, 4, 1, 2, 3).float() / 255
                tracks = torch.from_numpy(b["tracks"]).to(dev).permute(0, 2, 1, 3, 4)
            pred = model(noisy, t, embeds, ref_lat, keep, cond, pose, tracks)
            loss = F.mse_loss(pred.float(), v_target.float())
            # the global batch's loss (equal shares: the mean of the processes' means); every process
            # gets it, so all of them stop together on a non-finite loss
            global_loss = accelerator.reduce(loss.detach(), reduction="mean")
            if not bool(torch.isfinite(global_loss)):
                from ..errors import NonFiniteError

                raise NonFiniteError(f"training step {step + 1}: the loss is not finite ({float(global_loss)})",
                                     cause="NaN/inf in the batch or the model (no update was applied; the "
                                           "last checkpoint is intact)",
                                     hint="check the dataset with fgbg prepare's meta.json, or lower the "
                                          "learning rate and resume from the last checkpoint")
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(params, 1.0)
            opt.step()
            lr_sched.step()
            opt.zero_grad(set_to_none=True)
        done = step + 1
        loss_value = float(global_loss)
        if progress is not None:
            progress(done, loss_value)
        if accelerator.is_main_process and (done % cfg.log_every == 0 or done == cfg.max_steps):
            with metrics_log.open("a") as fh:
                fh.write(json.dumps({"step": done, "loss": loss_value, "lr": lr_sched.get_last_lr()[0],
                                     "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
        if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
            _save_checkpoint(accelerator, out, done, cfg.keep_checkpoints)
        if cfg.sample_every and done % cfg.sample_every == 0 and accelerator.is_main_process:
            _sample_video(pipe, videos[0], out / "samples" / f"step-{done:07d}.mp4", cfg)
            model.train()
    accelerator.wait_for_everyone()
    final = out / "pipeline"
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        pipe.reference_net, pipe.unet = unwrapped.reference_net, unwrapped.unet
        pipe.pose_encoder, pipe.track_encoder = unwrapped.pose_encoder, unwrapped.track_encoder
        tmp = out / "pipeline.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "fgbg_pipeline.json").write_text(json.dumps(
            {"trained_resolution": cfg.resolution, "stage": cfg.stage, "steps": cfg.max_steps,
             "init": cfg.init, "datasets": cfg.datasets}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()  # every process returns once the pipeline is written
    return final


@torch.no_grad()
def latent_cache(videos, vae, size: int, folder: Path, *, chunk: int = 16, log=print) -> list[np.ndarray]:
    """Every frame of every video, resized to `size` as render_batch does and encoded once by the
    frozen VAE, as (F, C, h, w) float32 per video (memory-mapped .npy files in `folder`, one per
    video, named by the video and the VAE's fingerprint, so another VAE or size never reads them).
    A file is written to a temporary name and renamed: a killed run leaves no half file."""
    import hashlib

    from .data import _resize

    params = torch.cat([p.detach().float().flatten()[:4096] for p in vae.parameters()])
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}  # not its path
    fp = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()
                        + params.cpu().numpy().tobytes()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    sf = vae.config.scaling_factor
    device = next(vae.parameters()).device
    out, made, t0 = [], 0, time.perf_counter()
    for v in videos:
        content = hashlib.sha256(np.asarray(v.frames[[0, -1]]).tobytes()).hexdigest()[:8]
        path = folder / f"{v.id.replace('/', '_')}-{content}-{size}-{fp}.npy"
        if not path.is_file():
            parts = []
            for i in range(0, len(v.frames), chunk):
                x = torch.from_numpy(np.array(_resize(v.frames[i:i + chunk], size))).permute(0, 3, 1, 2)
                x = x.float() / 255
                parts.append((vae.encode(x.to(device) * 2 - 1).latent_dist.mean * sf).float().cpu().numpy())
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, np.concatenate(parts))
            tmp.rename(path)
            made += 1
        out.append(np.load(path, mmap_mode="r"))
    log(f"latents: {len(videos)} videos in {folder} ({made} encoded, {time.perf_counter() - t0:.0f} s)")
    return out


def _clip_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    from ..diffusion.pipeline import CLIP_MEAN, CLIP_STD

    x = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    folder = out / "checkpoints" / f"step-{step:07d}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()  # every process's part (its RNG states) is on disk
    if accelerator.is_main_process:
        (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
        for old in _checkpoints(out)[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)


@torch.no_grad()
def _sample_video(pipe, video, path: Path, cfg: TrainConfig) -> None:
    """A short clip of the first training video, generated from its first frame, for a look."""
    from ..diffusion.track_maps import render_track_maps
    from ..pose.draw import draw_pose_maps
    from ..video import write_video
    from .data import _resize

    for m in (pipe.reference_net, pipe.unet, pipe.pose_encoder, pipe.track_encoder):
        m.eval()
    n = min(len(video.frames), max(2, cfg.frames))
    size, src = cfg.resolution, video.frames.shape[1]
    frames = _resize(video.frames[:n], size)
    kps = (video.keypoints[:n] + 0.5) * size / src - 0.5
    pose = draw_pose_maps(kps, video.scores[:n], size, size)
    tracks = render_track_maps(video.tracks[:n], video.visible[:n], video.origin, (src, src), (size, size))
    ctx = pipe.encode_reference(frames[0], size, size)
    out = pipe.generate_clip(ctx, pose, tracks, None, cfg.seed, num_inference_steps=cfg.sample_steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, iter([np.concatenate([frames, out], axis=2)]), 8.0)


def steps_per_epoch_hint(videos, batch_size: int) -> int:
    return max(1, math.ceil(sum(len(v.frames) for v in videos) / batch_size))
