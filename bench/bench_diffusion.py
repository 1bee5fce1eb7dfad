"""Speed and memory of the fgbg diffusion model with random weights (same cost as trained ones).

    make bench-diffusion                                   # tiny config, CPU: seconds per step
    python bench/bench_diffusion.py --size sd15 --device cuda --width 512 --height 768 \
        --frames 24 --steps 25                             # the real size, on a GPU

Prints a markdown table: per dtype and memory option, the reference pass, one denoising step
(UNet with CFG), seconds per output frame for a whole clip (steps + VAE decode), peak GPU memory,
and the UNet step's achieved TFLOP/s (FLOPs counted by torch.utils.flop_counter on one step).
Machines are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeat=1):
    sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    sync(device)
    return (time.perf_counter() - t) / repeat, out


def bench_one(size, device, dtype, width, height, frames, steps, low_memory, offload):
    from fgbg.diffusion.build import build_pipeline

    pipe = build_pipeline(size, seed=0, dtype=dtype, device="cpu" if offload else device)
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rng = np.random.RandomState(0)
    ref = (rng.rand(height, width, 3) * 255).astype(np.uint8)
    pose = (rng.rand(frames, height, width, 3) * 255).astype(np.uint8)
    tracks = rng.rand(frames, 3, height, width).astype(np.float32)
    t_ref, ctx = timed(lambda: pipe.encode_reference(ref, height, width), device)
    feats = pipe.encode_conditions(pose, tracks)
    h, w = height // 8, width // 8
    x = torch.randn(1, 4, frames, h, w, device=pipe.unet.device, dtype=pipe.unet.dtype)
    cond = pipe.condition_for(None, frames, height, width)
    t = pipe.scheduler.timesteps[0] if len(pipe.scheduler.timesteps) else torch.tensor(999)
    step = lambda: pipe._predict(ctx, x, t, feats, cond, 3.5, low_memory)  # noqa: E731
    with torch.no_grad():
        timed(step, device)  # warm-up (kernel selection)
        t_step, _ = timed(step, device, repeat=2)
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
    t_clip, _ = timed(lambda: pipe.generate_clip(ctx, pose, tracks, None, 0, num_inference_steps=steps,
                                                  low_memory=low_memory), device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if str(device).startswith("cuda") else float("nan")
    return dict(ref_s=t_ref, step_s=t_step, s_per_frame=t_clip / frames, peak_gib=peak,
                tflops=flops / t_step / 1e12)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="tiny", choices=("tiny", "sd15"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--dtypes", nargs="+", default=None, help="fp32 fp16 bf16")
    ap.add_argument("--options", nargs="+", default=["batched", "low-memory"],
                    help="batched (CFG as one batch), low-memory (two halves), offload")
    a = ap.parse_args()
    dtypes = a.dtypes or (["fp32"] if a.device == "cpu" else ["fp16", "bf16"])
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    print(f"device {a.device} ({torch.cuda.get_device_name() if a.device.startswith('cuda') else 'cpu'}), "
          f"size {a.size}, {a.width}x{a.height}, {a.frames}-frame clip, {a.steps} steps, CFG 3.5\n")
    print("| dtype | option | reference s | UNet step s (CFG) | s / output frame | peak GiB | UNet TFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for d in dtypes:
        for opt in a.options:
            r = bench_one(a.size, a.device, names[d], a.width, a.height, a.frames, a.steps,
                          low_memory=opt == "low-memory", offload=opt == "offload")
            print(f"| {d} | {opt} | {r['ref_s']:.3f} | {r['step_s']:.3f} | {r['s_per_frame']:.3f} | "
                  f"{r['peak_gib']:.2f} | {r['tflops']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
