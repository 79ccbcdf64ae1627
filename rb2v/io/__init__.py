"""Video and image I/O: probing, streaming decode, audio, encoding, GoPro chapters, PNGs."""

from .images import read_image, to_float, to_uint8, write_image
from .video import (
    VideoInfo,
    VideoSource,
    VideoWriter,
    iter_frames,
    open_source,
    probe,
    read_audio,
    read_frames,
    write_video,
)

__all__ = [
    "VideoInfo",
    "VideoSource",
    "VideoWriter",
    "iter_frames",
    "open_source",
    "probe",
    "read_audio",
    "read_frames",
    "write_video",
    "read_image",
    "write_image",
    "to_float",
    "to_uint8",
]
