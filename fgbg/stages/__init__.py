"""The stages of the data flow, one module each, in the order the data flows:

reference (the photo) | pose -> segment -> track -> generate -> stitch

Each module exposes NAME, VERSION and record(job) -> the stage's completed Record (reused when its
key matches, computed otherwise); record() computes missing upstream results first (cached), so
every stage works alone in a fresh work directory. Canvas geometry is in fgbg/canvas.py.
"""
