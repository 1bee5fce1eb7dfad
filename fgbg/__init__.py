"""fgbg: human video generation with disentangled foreground (pose) and background (tracks) motion.

The package is laid out as the data flow: `stages/` (one module per stage), `backends/<capability>/`
(the models behind them), `diffusion/` (our networks and pipeline), `training/` (prepare, train),
`evaluation/`, `artifacts.py` (every file format), `params.py` (every default), `canvas.py`,
`tracks.py`, `store/` (the model store), `cli/` (the commands).
"""

__version__ = "0.1.0"
