"""Still images: every PNG rb2v writes reads back exactly, at every compression level."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rb2v.errors import Rb2vError
from rb2v.io.images import encode_png, read_image, to_uint8, write_image


@pytest.mark.parametrize("compression", [0, 1, 6])
def test_pngs_read_back_exactly_at_every_level(fixtures_dir, tmp_path, compression):
    photo = read_image(fixtures_dir / "img_seq" / "00000.jpg", dtype="uint8")  # a real street frame, RGB
    write_image(tmp_path / "rgb.png", photo, compression=compression)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png", dtype="uint8"), photo)
    grey = photo[..., 1]
    write_image(tmp_path / "grey.png", grey, compression=compression)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED), grey)
    deep = (photo[..., 0].astype(np.uint16) * 257) ^ np.arange(photo.shape[1], dtype=np.uint16)  # 16 bits used
    write_image(tmp_path / "deep.png", deep, bits=16, compression=compression)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_UNCHANGED), deep)
    # the dataset's writer: float RGB in, the same 8-bit pixels out, channels in RGB order
    as_float = photo.astype(np.float32) / 255
    decoded = cv2.imdecode(np.frombuffer(encode_png(as_float, compression), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded[..., ::-1], to_uint8(as_float))


def test_compressed_pngs_are_smaller_than_stored_ones(fixtures_dir):
    photo = read_image(fixtures_dir / "img_seq" / "00000.jpg", dtype="uint8")
    stored, deflated = len(encode_png(photo, 0)), len(encode_png(photo, 1))
    assert stored >= photo.size and deflated < 0.8 * stored, (stored, deflated)


def test_an_unknown_image_type_is_a_one_line_error_and_writes_nothing(tmp_path):
    from rb2v.cli import main as rb2v_main

    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(Rb2vError, match=r"out.xyz: cannot write images of type '.xyz'"):
        write_image(tmp_path / "out.xyz", img)
    write_image(tmp_path / "out.JPG", img)  # any case of a known type
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.JPG"]
    a = tmp_path / "a.png"
    write_image(a, img)
    assert rb2v_main(["interpolate", str(a), str(a), str(tmp_path / "mid.txt"), "--method", "linear"]) == 2


def test_image_files_are_in_frame_order_when_numbers_are_not_padded(tmp_path):
    """Sorted as text, frame10 came before frame2: synth-reds built its samples from frames out of time order."""
    from rb2v.io.images import image_files

    for i in (0, 1, 2, 10, 11, 20):
        (tmp_path / f"frame{i}.png").write_bytes(b"")
    assert [p.name for p in image_files(tmp_path)] == [f"frame{i}.png" for i in (0, 1, 2, 10, 11, 20)]


@pytest.mark.parametrize("kept", [0.3, 0.9, -1])
def test_a_png_cut_short_is_named_before_libpng_speaks(tmp_path, kept, capfd):
    """A truncated PNG printed libpng's own "PNG input buffer is incomplete" line before rb2v's error."""
    path = tmp_path / "frame.png"
    write_image(path, np.random.default_rng(0).random((64, 96, 3), dtype=np.float32))
    data = path.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: int(len(data) * kept)] if kept > 0 else data[:-1])
    with pytest.raises(Rb2vError, match=r"cut.png: truncated PNG \(no end chunk\)$"):
        read_image(cut)
    assert "libpng" not in capfd.readouterr().err
    assert read_image(path).shape == (64, 96, 3)  # whole: read as before


def _jpeg_with_thumbnail() -> bytes:
    """A JPEG whose EXIF-like APP1 header carries a whole thumbnail JPEG (with its own end marker)."""
    img = (np.random.default_rng(1).random((64, 96, 3)) * 255).astype(np.uint8)
    ok, main = cv2.imencode(".jpg", img)
    ok, thumb = cv2.imencode(".jpg", img[::8, ::8])
    payload = b"Exif\0\0" + thumb.tobytes()
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return main.tobytes()[:2] + app1 + main.tobytes()[2:]


@pytest.mark.parametrize("kept", [0.5, 0.9, -2])
def test_a_jpeg_cut_short_is_refused_not_decoded_with_a_grey_bottom(tmp_path, kept):
    """libjpeg decoded a truncated JPEG with its missing rows grey, printing only a warning: synth-reds
    and deblur took the grey as picture. The thumbnail's own end marker must not count as the end."""
    data = _jpeg_with_thumbnail()
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    whole.write_bytes(data)
    cut.write_bytes(data[: int(len(data) * kept)] if kept > 0 else data[:kept])
    with pytest.raises(Rb2vError, match=r"cut.jpg: truncated JPEG \(no end of image after its scan\)$"):
        read_image(cut)
    assert read_image(whole).shape == (64, 96, 3)
    # bytes after the end marker (a motion photo's video, padding) are the camera's, not damage
    whole.write_bytes(data + b"\0" * 100 + b"ftypmp42")
    assert read_image(whole).shape == (64, 96, 3)
