"""The `fgbg` command line, one thin module per command group:

- `stages.py`: extract-pose, segment, track-bg, generate, stitch, run (the chain, cached);
- `data.py`: sample, prepare;
- `batch.py`: batch (many run jobs from a file, fgbg.batch);
- `train.py`: train, eval;
- `models.py`: models list | fetch | verify | path | import | convert;
- `app.py`: app (the web page, fgbg.app; gradio imported inside the command);
- `common.py`: the options (each defined once), the job, and the error guard.

stdout carries only the result path of each command; progress, logs and the summary go to stderr.
Heavy modules are imported inside the commands so `fgbg --help` answers at once.
"""

from __future__ import annotations

import typer

from . import app as app_command
from . import batch, data, stages, train
from .models import models_app

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Animate a person photo with a driving video; the background moves as the "
                       "driving video's background moves.")

for command in stages.app.registered_commands:
    app.registered_commands.append(command)
app.command("sample")(data.sample)
app.add_typer(models_app, name="models")
app.command("prepare")(data.prepare)
app.command("batch")(batch.batch)
app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("app")(app_command.app)


def main() -> None:
    app(prog_name="fgbg")
