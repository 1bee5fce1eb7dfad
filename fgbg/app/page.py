"""The Gradio page of `fgbg app` (imports gradio: only `fgbg app` and the app tests load this).

One form: driving video + reference photo (the built-in sample as an example), generator
(warp, or diffusion with each pipeline found), steps, guidance, seed, size; one button. The
click runs `fgbg.app.jobs.run_job` (the cached stages of `fgbg run`, one work directory per input
pair and options) with live progress per stage, then shows the output video (with the driving
audio), a download, and the pose / mask / track previews. An FgbgError shows its error/cause/hint
lines in the status box instead of the outputs; anything else shows the same three lines the CLI
prints for an unexpected failure (the traceback goes to the server log only). The queue runs one
job at a time; the others wait and see their place in it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from ..errors import FgbgError
from ..params import GenerateParams
from . import jobs

log = logging.getLogger("fgbg.app")

TITLE = "fgbg: a photo of a person, moved by a driving video, with a moving background"
INTRO = ("Upload a **driving video** (someone moving; a pan, zoom or shake of the camera is kept) "
         "and a **photo** of the person to animate, or click the built-in sample below. The same "
         "cached stages as `fgbg run` run here: the same inputs and options a second time answer "
         "at once.")
CSS = "#fgbg-status pre {white-space: pre-wrap;}"


def _status_error(lines: list[str]) -> str:
    return "```\n" + "\n".join(lines) + "\n```"


def build_page(root: Path, choices: list[jobs.Generator], device: str = "auto") -> gr.Blocks:
    """The page (not launched). root: the app folder (sample, work directories)."""
    sample = jobs.ensure_sample(root)
    by_label = {g.label: g for g in choices}

    def run(video, photo, generator, steps, guidance, seed, size, progress=gr.Progress()):
        empty = (None, None, None, None, None)
        gen = by_label.get(generator)
        if gen is None:
            return *empty, _status_error([f"error: generator '{generator}' is not offered",
                                          f"cause: this page has: {', '.join(by_label)}",
                                          "hint: reload the page and choose one of the list"])
        options = jobs.PageOptions(gen.backend, gen.pipeline, int(steps), float(guidance), int(seed), size)

        def on_progress(fraction: float, what: str) -> None:
            progress(fraction, desc=what)

        try:
            res = jobs.run_job(video, photo, options, device=device, on_progress=on_progress, root=root)
        except FgbgError as err:
            # uploads sit in gradio's temporary folders: the user knows them by their names
            uploads = {str(f): Path(f).name for f in (video, photo) if f}
            lines = err.lines()
            for path, name in uploads.items():
                lines = [line.replace(path, name) for line in lines]
            return *empty, _status_error(lines)
        except Exception as exc:  # a bug or an unexpected failure: the page stays usable
            log.exception("fgbg app: a stage failed")
            return *empty, _status_error([f"error: a stage failed: {type(exc).__name__}: {exc}",
                                          "cause: an unexpected error inside fgbg or a library it uses",
                                          "hint: the server log has the traceback; cached results so "
                                          "far are kept"])
        p = res.previews
        return (str(res.output), str(res.output), str(p["pose"]), str(p["segment"]), str(p["track-bg"]),
                res.summary())

    with gr.Blocks(title="fgbg") as page:
        gr.Markdown(f"# {TITLE}\n\n{INTRO}")
        with gr.Row():
            video = gr.Video(label="driving video", sources=["upload"], elem_id="fgbg-video")
            photo = gr.Image(label="reference photo", type="filepath", image_mode=None,
                             sources=["upload"], elem_id="fgbg-photo")
        gr.Examples([[str(sample.driving), str(sample.ref)]], inputs=[video, photo],
                    label="built-in sample (dancing figure, camera pans)")
        with gr.Row():
            generator = gr.Dropdown([g.label for g in choices], value=choices[0].label, label="generator",
                                    elem_id="fgbg-generator", info="warp: weight-free preview; diffusion: the fgbg model")
            size = gr.Dropdown(list(jobs.SIZES), value="auto", label="size (long side, px)",
                               info="auto: the video's size (the diffusion model fits it)")
            seed = gr.Number(GenerateParams.seed, precision=0, label="seed")
        with gr.Row():
            steps = gr.Slider(1, 100, GenerateParams.steps, step=1, label="steps (diffusion)")
            guidance = gr.Slider(1.0, 10.0, GenerateParams.guidance_scale, step=0.5,
                                 label="guidance (diffusion; 1 = off)")
        button = gr.Button("Generate", variant="primary", elem_id="fgbg-run")
        status = gr.Markdown("", label="status", elem_id="fgbg-status")
        with gr.Row():
            output = gr.Video(label="output", elem_id="fgbg-output", interactive=False)
            download = gr.File(label="download mp4", elem_id="fgbg-download", interactive=False)
        with gr.Row():
            previews = [gr.Video(label=label, elem_id=f"fgbg-preview-{name}", interactive=False)
                        for name, label in (("pose", "pose"), ("segment", "person mask"),
                                            ("track-bg", "background tracks"))]
        button.click(run, [video, photo, generator, steps, guidance, seed, size],
                     [output, download, *previews, status], api_name="generate",
                     concurrency_limit=1)
    return page


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, pipeline: str = "",
           device: str = "auto", root: Path | None = None) -> None:
    """Build the page and serve it until interrupted (one job at a time; the rest queue)."""
    root = Path(root) if root is not None else jobs.app_dir()
    root.mkdir(parents=True, exist_ok=True)
    page = build_page(root, jobs.generators(pipeline), device)
    page.queue(default_concurrency_limit=1)
    import sys

    print(f"fgbg app: work directories and the sample under {root}", file=sys.stderr, flush=True)
    page.launch(server_name=host, server_port=port, share=share, allowed_paths=[str(root)],
                css=CSS, show_error=False, footer_links=["api"])
