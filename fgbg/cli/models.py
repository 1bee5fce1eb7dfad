"""`fgbg models ...`: the artifacts pinned in models.lock (list, fetch, verify, path, import)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Quiet, Verbose, guarded

models_app = typer.Typer(no_args_is_help=True, help="Model artifacts pinned in models.lock.")
from ..errors import InputError

@models_app.command("list")
@guarded
def models_list(all_: Annotated[bool, typer.Option("--all", help="also list artifacts no backend loads")] = False,
                verbose: Verbose = False):
    """The artifacts in models.lock and their state on this machine (present/missing/corrupt)."""
    from rich.console import Console
    from rich.table import Table

    from ..store import list_table, models_dir

    rows = list_table() if all_ else list_table(roles=("required", "optional", "training"))
    table = Table(show_edge=False, header_style="bold")
    # names are what `fgbg models fetch NAME` takes: never cut; the path folds instead
    table.add_column("name", no_wrap=True, min_width=max([len(str(r[0])) for r in rows] + [4]))
    for col in ("backend", "size", "licence", "state", "path"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*[str(x) for x in r])
    # piped (not a terminal): wide lines, so grep and scripts see whole names and paths
    console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 240)
    console.print(table)
    print(f"models folder: {models_dir()}", file=sys.stderr)



def _lock_entries(names: list[str]):
    """The entries `names` name. A name that is no entry but prefixes entries as `NAME-...` names
    that group, less its `unused` entries (`taef2` -> taef2-encoder and taef2-decoder)."""
    from ..store import _entry, load_lock

    lock = load_lock()
    entries = []
    for n in dict.fromkeys(names):
        group = [] if n in lock else [e for k, e in lock.items()
                                      if k.startswith(f"{n}-") and e.role != "unused"]
        entries += [e for e in (group or [_entry(n, lock)]) if e not in entries]
    return lock, entries


@models_app.command("fetch")
@guarded
def models_fetch(names: Annotated[Optional[list[str]], typer.Argument(help="artifact names (see `fgbg models list`); a name's prefix before '-' names that group (taef2: taef2-encoder and taef2-decoder)", show_default=False)] = None,
                 for_: Annotated[Optional[str], typer.Option("--for", help="'run': every artifact whose role is 'required' (what the default backends load)")] = None,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="accept restricting licences (non-commercial, gated, use-restricted) without asking")] = False,
                 verbose: Verbose = False, quiet: Quiet = False):
    """Download artifacts into the models folder and verify them (resumes a partial download).

    stdout: the path of each artifact, one a line."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    from ..errors import ModelError
    from ..store.fetch import already_there, confirm_licences, download, stderr_line
    from ..store import models_dir

    if for_ is not None and for_ != "run":
        raise InputError(f"unknown --for '{for_}'", cause="--for takes 'run'",
                         hint="use `fgbg models fetch --for run`, or name the artifacts")
    if not names and for_ is None:
        raise InputError("nothing to fetch", cause="no artifact names and no --for",
                         hint="name artifacts (`fgbg models list` shows them) or use --for run")
    lock, entries = _lock_entries(names or [])
    if for_ == "run":
        entries += [e for e in lock.values() if e.role == "required" and e not in entries]
    todo = [e for e in entries if not already_there(e)]
    done = [e for e in entries if e not in todo]
    for e in done:
        if not quiet:
            stderr_line(f"{e.name}: already present")
    ask = None
    if sys.stdin.isatty():
        ask = lambda q: typer.confirm(q, default=False, err=True)  # noqa: E731
    confirm_licences(todo, yes=yes, out=stderr_line, ask=ask)

    failed: list[tuple[str, ModelError]] = []
    paths = {e.name: models_dir() / e.file for e in done}
    console = Console(stderr=True, quiet=quiet)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for e in todo:
            try:
                paths[e.name] = download(e, progress=progress,
                                         warn=lambda m: console.print(f"warning: {m}", markup=False,
                                                                      highlight=False))
            except ModelError as err:
                if len(entries) == 1:
                    raise
                failed.append((e.name, err))
                for line in err.lines():
                    console.print(line, markup=False, highlight=False)
    for e in entries:
        if e.name in paths and e.name not in dict(failed):
            print(paths[e.name])
    if failed:
        names_failed = ", ".join(n for n, _ in failed)
        raise ModelError(f"{len(failed)} of {len(entries)} artifacts could not be fetched: {names_failed}",
                         cause="see the errors above",
                         hint="fix those and rerun: finished artifacts are kept, partial ones resume")


@models_app.command("verify")
@guarded
def models_verify(names: Annotated[Optional[list[str]], typer.Argument(help="artifact names; none: every artifact on disk", show_default=False)] = None,
                  no_cache: Annotated[bool, typer.Option("--no-cache", help="rehash every file (ignore the hash cache)")] = False,
                  verbose: Verbose = False):
    """Recompute the hashes and show each artifact's state; exit 3 if one is corrupt or missing."""
    from rich.console import Console
    from rich.table import Table

    from ..errors import ModelError
    from ..store import check

    lock, entries = _lock_entries(names or [])
    results = [check(e, use_cache=not no_cache) for e in (entries if names else lock.values())]
    if not names:
        results = [r for r in results if r.state != "missing"]
    table = Table(show_edge=False, header_style="bold")
    for col in ("name", "state", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.name, r.state, r.detail)
    if results:
        Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 240).print(table)
    else:
        print("no artifacts on disk to verify", file=sys.stderr)
    bad = [r for r in results if r.state in ("missing", "corrupt")]
    if bad:
        raise ModelError(f"{len(bad)} artifact(s) failed verification: "
                         + ", ".join(f"{r.name} ({r.state})" for r in bad),
                         cause="; ".join(r.detail for r in bad),
                         hint=f"run `fgbg models fetch {' '.join(r.name for r in bad)}`")


@models_app.command("path")
@guarded
def models_path(name: Annotated[str, typer.Argument(help="artifact name", show_default=False)],
                verbose: Verbose = False):
    """Print the absolute path of an artifact; exit 3 when it is missing or corrupt."""
    import warnings

    from ..store import require

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = require(name)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(Path(path).resolve())


@models_app.command("import")
@guarded
def models_import(name: Annotated[str, typer.Argument(help="artifact name", show_default=False)],
                  file: Annotated[Path, typer.Argument(help="a file downloaded elsewhere (for a git entry: its source archive, .tar.gz)", show_default=False)],
                  verbose: Verbose = False):
    """Copy a file downloaded elsewhere into place, verified like a fetch (for offline machines)."""
    from ..store.fetch import import_file
    from ..store import _entry

    entry = _entry(name, None)
    path = import_file(entry, file, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    print(path)


@models_app.command("convert")
@guarded
def models_convert(
        kind: Annotated[str, typer.Argument(help="what to convert: animateanyone")],
        out: Annotated[Optional[Path], typer.Option("--out", help="pipeline folder to write (default: <models>/pipelines/animateanyone, which `generate --backend auto` uses)")] = None,
        reference_unet: Annotated[Optional[Path], typer.Option("--reference-unet", help="reference_unet.pth (default: from the model store)")] = None,
        denoising_unet: Annotated[Optional[Path], typer.Option("--denoising-unet", help="denoising_unet.pth")] = None,
        motion_module: Annotated[Optional[Path], typer.Option("--motion-module", help="motion_module.pth")] = None,
        pose_guider: Annotated[Optional[Path], typer.Option("--pose-guider", help="pose_guider.pth")] = None,
        unet_config: Annotated[Optional[Path], typer.Option("--unet-config", help="SD1.5 unet/config.json")] = None,
        vae: Annotated[Optional[Path], typer.Option("--vae", help="folder with the VAE's config.json and weights (sd-vae-ft-mse)")] = None,
        image_encoder: Annotated[Optional[Path], typer.Option("--image-encoder", help="folder with the CLIP image encoder's config.json and weights")] = None,
        motion_heads: Annotated[int, typer.Option("--motion-heads", help="attention heads of the temporal blocks (AnimateAnyone: 8)")] = 8,
        dtype: Annotated[str, typer.Option("--dtype", help="dtype the pipeline is stored in: fp32 | fp16")] = "fp32",
        verbose: Verbose = False, quiet: Quiet = False):
    """Convert AnimateAnyone checkpoints into an fgbg pipeline folder (diffusers layout, safetensors).

    Strict: every key must land on a parameter of the same shape; the track encoder and the extra
    conv_in channels start at zero, so the result computes exactly what AnimateAnyone computes."""
    if kind != "animateanyone":
        raise InputError(f"cannot convert '{kind}'", cause="fgbg converts: animateanyone",
                         hint="fgbg models convert animateanyone")
    if dtype not in ("fp32", "fp16"):
        raise InputError(f"--dtype {dtype} is unknown", cause="pipelines are stored as fp32 or fp16",
                         hint="use --dtype fp32 (exact) or fp16 (half the disk)")
    from ..diffusion.convert import SOURCES
    from ..store import require

    given = dict(reference_unet=reference_unet, denoising_unet=denoising_unet, motion_module=motion_module,
                 pose_guider=pose_guider, unet_config=unet_config, vae=vae, image_encoder=image_encoder)
    paths = {}
    for key, lock_name in SOURCES.items():
        if given[key] is not None:
            path = Path(given[key])
            if not path.exists():
                raise InputError(f"--{key.replace('_', '-')} {path} does not exist", cause="no such file or folder",
                                 hint=f"pass the path of {key}, or leave the option out to use the model store")
        else:
            path = require(lock_name)  # exit 3 naming `fgbg models fetch` when absent
            if key in ("vae", "image_encoder"):
                path = path.parent
        paths[key] = path
    import torch

    from ..diffusion.backends_util import quiet_diffusers
    from ..diffusion.convert import convert_animateanyone

    quiet_diffusers()
    if out is None:
        from ..backends.generate.diffusion import default_pipeline_dir

        out = default_pipeline_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = convert_animateanyone(paths, out, motion_num_attention_heads=motion_heads,
                                     dtype=torch.float16 if dtype == "fp16" else torch.float32)
    if not quiet:
        m = manifest["mapped"]
        print(f"mapped {m['reference']} reference, {m['denoising']} denoising and {m['pose']} pose "
              f"tensors; track encoder and extra conv_in channels start at zero", file=sys.stderr)
    print(out.resolve())
