"""`fgbg app`: serve the web page (fgbg.app). gradio is imported inside the command only, so
`fgbg --help` stays fast and works without the `app` extra."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InputError
from .common import Device, Verbose, guarded

Host = Annotated[str, typer.Option("--host", help="address to listen on (0.0.0.0: every interface)")]
Port = Annotated[int, typer.Option("--port", help="port to listen on")]
Share = Annotated[bool, typer.Option("--share", help="also serve through a public gradio.live link "
                                                     "(needs internet access)")]
Pipeline = Annotated[str, typer.Option("--pipeline", help="also offer this diffusion pipeline folder "
                                                          "as a generator")]


@guarded
def app(host: Host = "127.0.0.1", port: Port = 7860, share: Share = False, pipeline: Pipeline = "",
        device: Device = "auto", verbose: Verbose = False):
    """Web page: upload a driving video and a photo, pick the generator, get the video (Gradio)."""
    import os
    from importlib.util import find_spec
    from pathlib import Path

    from ..devices import check_device

    check_device(device)
    if find_spec("gradio") is None:
        raise InputError("fgbg app needs gradio", cause="it is not installed in this environment",
                         hint="pip install 'fgbg[app]'")
    if pipeline and not (Path(pipeline) / "model_index.json").is_file():
        raise InputError(f"--pipeline {pipeline} is not a pipeline folder", cause="it has no model_index.json",
                         hint="pass the folder `fgbg models convert` or training wrote")
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is out of range", cause="ports run from 1 to 65535",
                         hint="use --port 7860")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the server
    from ..app.page import launch

    launch(host=host, port=port, share=share, pipeline=pipeline, device=device)
