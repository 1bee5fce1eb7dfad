"""fgbg nodes for ComfyUI: a custom-node package (put this folder, or a link to it, in
ComfyUI/custom_nodes/ under a name other than `fgbg`, e.g. `fgbg-nodes`).

Nodes (category fgbg): Load Video, Load Pipeline, Extract Pose, Segment Person, Track Background,
Generate, Save Video; thin adapters over the fgbg library (fgbg.inmemory), see nodes.py.
The fgbg library must be importable in ComfyUI's Python (`pip install -e /path/to/fgbg[diffusion]`);
when it is not installed but this folder sits in an fgbg checkout, the checkout is used.
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

if _util.find_spec("fgbg") is None:  # a linked checkout: the library sits beside this folder
    _root = _Path(__file__).resolve().parent.parent
    if (_root / "fgbg" / "__init__.py").is_file():
        _sys.path.append(str(_root))

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
