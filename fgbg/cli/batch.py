"""`fgbg batch JOBS.csv|JOBS.jsonl`: many `run` jobs (fgbg.batch), on this machine or a Ray cluster.

stdout: one result line per job, in file order (`[k/N] done|cached OUTPUT`, `[k/N] failed OUTPUT:
error`); progress and hints go to stderr. Exit 1 when any job failed (after running the others),
2 for a jobs file that cannot be read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import (Address, Device, Engine, GpusPerWorker, Quiet, StageOptions, Verbose, Workers,
                     guarded, stage_options)


@guarded
@stage_options("generate", "stitch", "track", "pose", "segment")
def batch(jobs_file: Annotated[Path, typer.Argument(help="jobs: .csv with a header (driving,ref,output"
                                                         "[,workdir,backend,clip_length,seed,...]) or "
                                                         ".jsonl, one object per line",
                                                    show_default=False)],
          engine: Engine = "local", address: Address = None, workers: Workers = None,
          gpus_per_worker: GpusPerWorker = 0.0, device: Device = "auto", verbose: Verbose = False,
          quiet: Quiet = False, opts: StageOptions = None):
    """Run many `fgbg run` jobs from a file, with run's caching: a finished job is `cached` on a
    rerun. Options given here are every row's defaults; a row's own cells win. Relative paths
    in the file are read from the file's folder."""
    from ..batch import batch as run_batch
    from ..batch import defaults_from, format_result
    from ..report import Reporter

    report = Reporter(verbose=verbose, quiet=quiet)
    results = run_batch(jobs_file, defaults_from(opts), engine=engine, device=device, report=report,
                        address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    for r in results:
        print(format_result(r, len(results)))
    failed = [r for r in results if r["status"] == "failed"]
    if not quiet:
        done = sum(r["status"] == "done" for r in results)
        print(f"batch: {len(results)} jobs: {done} done, {len(results) - done - len(failed)} cached, "
              f"{len(failed)} failed", file=sys.stderr)
    for r in failed:
        if r.get("hint"):
            print(f"hint (job {r['id']}, line {r['line']}): {r['hint']}", file=sys.stderr)
    if failed:
        print("hint: fix the failed rows and rerun the same command (finished jobs are cached)",
              file=sys.stderr)
        raise typer.Exit(1)
