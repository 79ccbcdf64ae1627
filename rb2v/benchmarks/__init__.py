"""Benchmarks behind ``rb2v bench``: each module exposes a click command ``main``."""
