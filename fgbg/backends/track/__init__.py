"""Track backends: sparse point tracks on the background (points on the person masked out).

cotracker: CoTracker3 offline (the paper's tracker); lk: pyramidal Lucas-Kanade, weight-free.
"""

from .. import BackendSpec

# cotracker first: auto takes it whenever its code checkout and weights are in the store,
# although on a CPU it costs about 0.9 s a frame (lk: a few ms); `--tracker lk` for speed
ENTRIES = {
    "cotracker": BackendSpec("fgbg.backends.track.cotracker:CoTracker", ("cotracker-code", "cotracker3-offline")),
    "lk": BackendSpec("fgbg.backends.track.lk:LKTracker"),
}
