"""The dataset build: aligned takes (or a video folder for synth-reds) to manifest-described samples."""
