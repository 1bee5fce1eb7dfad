"""What the nodes take from the ComfyUI host when they run inside it: the torch device, the
progress bar and the interrupt button (comfy.model_management, comfy.utils), and the input and
output folders (folder_paths). Outside ComfyUI (or where a module is missing) fgbg's own choices
stand in: the device `auto`, no progress bar, the current folder.

Everything here is imported when a node runs, never when the package loads, so loading the nodes
costs nothing and the tests can put stand-in modules in place first."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def device() -> str:
    """ComfyUI's torch device as fgbg spells it (cpu | cuda | cuda:N); `auto` (a GPU when torch
    sees one) outside ComfyUI and for devices fgbg does not run on (mps, xpu, ...)."""
    mm = _module("comfy.model_management")
    if mm is None:
        return "auto"
    dev = mm.get_torch_device()
    kind, index = getattr(dev, "type", str(dev)), getattr(dev, "index", None)
    if kind == "cpu":
        return "cpu"
    if kind == "cuda":
        return "cuda" if index is None else f"cuda:{index}"
    return "auto"


def progress() -> Callable[[int, int], None]:
    """A `progress(done, total)` callback for fgbg.inmemory: ComfyUI's progress bar on the node
    (made at the first call, when the total is known), and its interrupt button honoured between
    chunks."""
    utils = _module("comfy.utils")
    mm = _module("comfy.model_management")
    bar = []

    def tick(done: int, total: int) -> None:
        if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
            mm.throw_exception_if_processing_interrupted()
        if utils is not None and hasattr(utils, "ProgressBar"):
            if not bar:
                bar.append(utils.ProgressBar(max(1, total)))
            bar[0].update_absolute(done, total)

    return tick


def input_dir() -> Path:
    fp = _module("folder_paths")
    return Path(fp.get_input_directory()) if fp is not None else Path.cwd()


def output_path(prefix: str, suffix: str = ".mp4") -> tuple[Path, str]:
    """-> (a new file path in ComfyUI's output folder, its subfolder), numbered as SaveImage
    numbers its files (folder_paths.get_save_image_path)."""
    fp = _module("folder_paths")
    if fp is None:
        folder, name, counter, subfolder = Path.cwd(), prefix, 1, ""
        while (folder / f"{name}_{counter:05}_{suffix}").exists():
            counter += 1
    else:
        full, name, counter, subfolder, _ = fp.get_save_image_path(prefix, fp.get_output_directory())
        folder = Path(full)
        folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}_{counter:05}_{suffix}", subfolder
