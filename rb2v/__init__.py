"""rb2v: build real blur2vid datasets from a beam-splitter camera rig."""

__version__ = "0.1.0"
