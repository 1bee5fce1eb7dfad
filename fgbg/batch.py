"""`fgbg batch JOBS.csv|JOBS.jsonl`: many `fgbg run` jobs, on this machine or a Ray cluster.

The jobs file has one job per row (CSV with a header) or per line (JSON Lines, one object each).
Columns (keys): `driving`, `ref`, `output` (all three needed), `workdir`, and any option of the
stages `run` takes, named as the option without its dashes (`backend`, `clip_length` or
`clip-length`, `seed`, `width`, `height`, `steps`, `guidance_scale`, `pose_backend`,
`seg_backend`, `tracker`, `num_points`, `crf`, `audio`, ...). An empty cell means "not set": the
value the command line gave (`fgbg batch jobs.csv --backend warp` sets it for every row), else
the option's default. Relative paths are read from the jobs file's folder, so a jobs file travels
with its data; on a cluster the paths must name shared storage every node sees at the same place.

The work directory defaults to `fgbg run`'s, `.fgbg/<video stem>` (from the current folder), or
to `.fgbg/<video stem>-<8 hex of the output path>` where several jobs' videos share a stem: a
work directory keeps one result per stage, so jobs sharing one would overwrite each other's
results and a rerun could not be all cached.

Every job runs the code `fgbg run` runs (the Job of fgbg.cli.common._job, then reference,
pose, segment, track-bg, generate and stitch.run's records), with the same work directory, cache
and resume: a rerun of the batch, or a job `fgbg run` finished in the same work directory, is
`cached`. A job whose row is wrong (a bad value, a missing file, no person in the photo) fails
alone; the others go on. Jobs given one work directory on purpose (a `workdir` column: one
driving video preprocessed once for several photos) run one after the other in one worker; the
others run stage by stage in batches (fgbg.engines), so each model is loaded once per batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

from .errors import InputError

REQUIRED = ("driving", "ref", "output")
STEPS = ("check", "ref", "pose", "segment", "track-bg", "generate", "stitch")
BATCH = 8
# option name -> the params field it sets, where the two differ
FIELD = {"pose_backend": "backend", "seg_backend": "backend", "tracker": "backend"}


def _options():
    """{option name: (group, default)} of every stage option `fgbg run` takes."""
    from .cli.common import GROUPS

    return {o.name: (g, o.default) for g, opts in GROUPS.items() for o in opts}


def read_jobs(path: Path) -> list[tuple[int, dict]]:
    """(line number, {column: value}) of every job in a .csv or .jsonl file; empty cells dropped.
    A file that cannot be read as jobs is an InputError (exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"jobs file not found: {path}", cause="no file at that path",
                         hint="give a .csv (header: driving,ref,output,...) or .jsonl file")
    kind = path.suffix.lower()
    if kind not in (".csv", ".jsonl"):
        raise InputError(f"jobs file {path} is not .csv or .jsonl",
                         cause="fgbg batch reads CSV with a header row, or JSON Lines",
                         hint="rename it, or write one job per line as a JSON object in a .jsonl file")
    rows, columns = [], []  # columns: (line, name) of every column or key named
    try:
        with open(path, newline="") as f:
            if kind == ".csv":
                reader = csv.DictReader(f, skipinitialspace=True)
                columns += [(1, k) for k in reader.fieldnames or () if k and k.strip()]
                for row in reader:
                    if None in row:
                        raise InputError(f"{path}, line {reader.line_num}: more cells than columns",
                                         cause="a value holds a comma without quotes",
                                         hint='quote values that hold commas: "a, b.mp4"')
                    cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
                    if any(cells.values()):
                        rows.append((reader.line_num, {k: v for k, v in cells.items() if v != ""}))
            else:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as exc:
                        raise InputError(f"{path}, line {n}: not JSON", cause=str(exc),
                                         hint='write one object per line: {"driving": "a.mp4", '
                                              '"ref": "p.png", "output": "a.out.mp4"}') from exc
                    if not isinstance(obj, dict):
                        raise InputError(f"{path}, line {n}: not a JSON object",
                                         cause=f"found {type(obj).__name__}",
                                         hint='write one object per line: {"driving": ...}')
                    columns += [(n, k) for k in obj]
                    rows.append((n, {k: v for k, v in obj.items() if v is not None and v != ""}))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read jobs file {path}", cause=str(exc),
                         hint="give a UTF-8 .csv or .jsonl file") from exc
    known = set(REQUIRED) | {"workdir"} | set(_options())
    for n, key in columns:
        if _column(key) not in known:
            raise InputError(f"{path}, line {n}: unknown column '{key}'",
                             cause=f"a job has {', '.join(REQUIRED)}, workdir and the options of "
                                   f"`fgbg run`: {', '.join(sorted(_options()))}",
                             hint="rename or drop the column")
    missing = [c for c in REQUIRED if c not in {_column(k) for n, k in columns if n == 1}]
    if kind == ".csv" and missing:
        raise InputError(f"{path}: no {missing[0]} column", cause=f"a job needs {', '.join(REQUIRED)}",
                         hint=f"start the file with the header line {','.join(REQUIRED)}")
    if not rows:
        raise InputError(f"no jobs in {path}", cause="the file has no rows",
                         hint="one job per row: driving,ref,output")
    return [(n, {_column(k): v for k, v in row.items()}) for n, row in rows]


def _column(key) -> str:
    """'Clip-Length ' -> 'clip_length'."""
    return str(key).strip().lower().replace("-", "_")


def _value(name: str, raw, default):
    """A cell as the option's type (the default's: bool, int, float or str)."""
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{name} '{raw}' is not true or false", cause="a yes/no option",
                         hint=f"write {name} as true or false")
    if isinstance(default, int):
        try:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw) if not isinstance(raw, str) else int(raw.strip())
        except (TypeError, ValueError):
            raise InputError(f"{name} '{raw}' is not a whole number", cause="the option takes an integer",
                             hint=f"write {name} as e.g. {default}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise InputError(f"{name} '{raw}' is not a number", cause="the option takes a number",
                             hint=f"write {name} as e.g. {default}") from None
    return str(raw)


def defaults_from(opts) -> dict:
    """{option name: value} of a command's checked StageOptions (the batch command's own)."""
    values = {}
    for name, (group, default) in _options().items():
        params = getattr(opts, group, None)
        values[name] = getattr(params, FIELD.get(name, name), default) if params is not None else default
    return values


def plan(rows: list[tuple[int, dict]], base: Path, defaults: dict, cwd: Path | None = None) -> list[dict]:
    """Checked job specs, in file order: {id, line, driving, ref, output, workdir, params} for a
    job that can run, {id, line, output, error: {what, cause, hint}} for one whose row is wrong.
    Relative paths are taken from `base` (the jobs file's folder); the default work directory
    from `cwd` (as `fgbg run` does)."""
    from .cli.common import ORDER, _build
    from .engines import failure

    cwd = Path(cwd or Path.cwd())
    options = _options()
    specs, outputs = [], {}
    stems = Counter(Path(str(row["driving"])).stem for _, row in rows
                    if "driving" in row and "workdir" not in row)
    for k, (line, row) in enumerate(rows, 1):
        spec = {"id": k, "line": line, "output": str(row.get("output", ""))}
        try:
            missing = [c for c in REQUIRED if c not in row]
            if missing:
                raise InputError(f"no {missing[0]} given", cause=f"a job needs {', '.join(REQUIRED)}",
                                 hint=f"fill the {missing[0]} column of line {line}")
            paths = {c: (base / str(row[c])).resolve() if not Path(str(row[c])).is_absolute()
                     else Path(str(row[c])) for c in ("driving", "ref", "output")}
            if "workdir" in row:
                wd = Path(str(row["workdir"]))
                paths["workdir"] = wd if wd.is_absolute() else (base / wd).resolve()
            else:  # `fgbg run`'s, unless other jobs would share it: then one per job
                wd = (cwd / ".fgbg" / paths["driving"].stem).resolve()
                if stems[paths["driving"].stem] > 1:
                    tag = hashlib.sha1(str(paths["output"]).encode()).hexdigest()[:8]
                    wd = wd.with_name(f"{wd.name}-{tag}")
                paths["workdir"] = wd
            spec["output"] = str(paths["output"])
            if str(paths["output"]) in outputs:
                raise InputError(f"output {paths['output']} is also job {outputs[str(paths['output'])]}'s",
                                 cause="two jobs would write the same file",
                                 hint="give every job its own output")
            outputs[str(paths["output"])] = k
            values = {name: default for name, (_, default) in options.items()} | dict(defaults)
            for name, raw in row.items():
                if name in options:
                    values[name] = _value(name, raw, options[name][1])
            params = {g: _build(g, values) for g in ORDER}  # checked in the stages' order
        except InputError as exc:
            specs.append({**spec, "error": {**failure(exc), "hint": exc.hint}})
            continue
        specs.append({**spec, **{c: str(p) for c, p in paths.items()}, "params": params})
    return specs


def _open(spec: dict, device: str):
    """The Job of a spec, as `fgbg run` builds it, its inputs checked and its work dir locked."""
    from .cli.common import _job
    from .stages import generate, reference, stitch

    stitch.check_output(Path(spec["output"]))
    job = _job(Path(spec["driving"]), Path(spec["workdir"]), ref=Path(spec["ref"]), quiet=True,
               device=device, **spec["params"])
    reference.check(job)
    generate.check(job)
    job.workdir.acquire()
    return job


def _step(job, spec: dict, stage: str):
    from .stages import generate, pose, reference, segment, stitch, track

    if stage == "stitch":
        return stitch.run(job, Path(spec["output"]))
    return {"ref": reference.record, "pose": pose.record, "segment": segment.record,
            "track-bg": track.record, "generate": generate.record}[stage](job)


def run_batch(items: list[dict], device: str = "auto"):
    """Run a batch of job groups ({ids, jobs: [spec]}, one group per work directory): round r
    takes the r-th job of every group, and runs it stage by stage over the round (reference,
    pose, segment, track-bg, generate, stitch), so each model is built once per round. The same
    code on the local engine and on every Ray worker (fgbg.engines).

    Yields ("step", id, stage), then ("done", id, {status: "done" | "cached", output, seconds})
    or ("failed", id, {what, cause, hint, traceback, seconds})."""
    from .engines import failure

    rounds = max(len(item["jobs"]) for item in items)
    for r in range(rounds):
        specs = [item["jobs"][r] for item in items if len(item["jobs"]) > r]
        jobs, seconds = {}, {}

        def timed(i, fn, *args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                seconds[i] = seconds.get(i, 0.0) + time.perf_counter() - start

        def failed(i, exc):
            job = jobs.pop(i, None)
            if job is not None:
                job.workdir.release()
            return "failed", i, {**failure(exc), "hint": getattr(exc, "hint", None),
                                 "seconds": seconds.get(i, 0.0)}

        try:
            for spec in specs:
                try:
                    jobs[spec["id"]] = timed(spec["id"], _open, spec, device)
                except Exception as exc:
                    yield failed(spec["id"], exc)
                    continue
                yield "step", spec["id"], "check"
            for stage in STEPS[1:]:
                for spec in specs:
                    i = spec["id"]
                    if i not in jobs:
                        continue
                    try:
                        out = timed(i, _step, jobs[i], spec, stage)
                    except Exception as exc:
                        yield failed(i, exc)
                        continue
                    if stage != "stitch":
                        yield "step", i, stage
                        continue
                    job = jobs.pop(i)
                    job.workdir.release()
                    cached = all(row.status == "cached" for row in job.report.rows)
                    yield "done", i, {"status": "cached" if cached else "done", "output": str(out),
                                      "seconds": seconds[i]}
        finally:
            for job in jobs.values():
                job.workdir.release()


def batch(jobs_file: Path, defaults: dict, engine: str = "local", device: str = "auto", report=None,
          address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0.0) -> list[dict]:
    """Run every job of the file -> one result per job, in file order: {id, line, output,
    status: "done" | "cached" | "failed", what, cause, hint (failed), seconds}."""
    from .devices import check_device
    from .engines import check_engine, run_items
    from .report import Reporter

    check_device(device)
    check_engine(engine, address=address, workers=workers, gpus_per_worker=gpus_per_worker, device=device)
    report = report or Reporter(quiet=True)
    jobs_file = Path(jobs_file)
    specs = plan(read_jobs(jobs_file), jobs_file.resolve().parent, defaults)
    results = {}
    for s in specs:
        if "error" in s:
            results[s["id"]] = {"status": "failed", **s["error"], "seconds": 0.0}
    groups = {}
    for s in specs:
        if "error" not in s:
            groups.setdefault(s["workdir"], []).append(s)
    items = [{"ids": [s["id"] for s in g], "jobs": g} for g in groups.values()]
    steps = {}
    events = run_items("fgbg.batch:run_batch", items, {}, engine=engine, device=device, report=report,
                       batch=BATCH, address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    with report.progress(f"batch ({engine})", len(specs) - len(results)) as advance:
        for kind, i, payload in events:
            if kind == "step":
                steps[i] = steps.get(i, 0) + 1
                advance(1 / len(STEPS))
                continue
            advance(1 - steps.get(i, 0) / len(STEPS))
            results[i] = {"status": payload.get("status", "failed"), **payload}
            if report.verbose and kind == "failed" and payload.get("traceback"):
                report.debug(payload["traceback"])
    out = []
    for s in specs:
        r = results.get(s["id"]) or {"status": "failed", "what": "the job never ran",
                                     "cause": "its worker returned no result", "seconds": 0.0}
        r = {k: v for k, v in r.items() if k != "traceback"}
        out.append({"id": s["id"], "line": s["line"], "output": r.get("output") or s["output"], **r})
    return out


def format_result(r: dict, total: int) -> str:
    """One line: `[k/N] done OUTPUT (12.3s)`, `[k/N] cached OUTPUT`, `[k/N] failed OUTPUT: error`."""
    head = f"[{r['id']}/{total}] {r['status']} {r['output']}"
    if r["status"] == "failed":
        return f"{head}: {r['what']}" + (f" ({r['cause']})" if r.get("cause") else "")
    return head + (f" ({r['seconds']:.1f}s)" if r["status"] == "done" else "")
