"""The stages of the data flow, one module each, in the order the data flows:

reference (the photo) | pose -> segment -> track -> generate -> stitch

Each module exposes NAME, VERSION, key(job) and run(job) -> Path of its main output. run() computes
missing upstream results first (cached), so every stage works alone in a fresh work directory.
"""
