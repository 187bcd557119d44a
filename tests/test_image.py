"""The one image loader: every mode to RGB, EXIF orientation, and one error type for bad files."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import pattern, write_image
from petal.data.image import (
    MAX_FILE_BYTES,
    ImageLoadError,
    is_heif,
    load_image,
    resize_and_center_crop,
)


def _saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _rgb(data: bytes) -> np.ndarray:
    image = load_image(data)
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "YCbCr", "I", "I;16"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    if mode.startswith("I"):  # 16-bit grey, as 16-bit PNG ("I;16") or 32-bit TIFF ("I")
        grey = np.asarray(pattern(1).convert("L"), dtype=np.int32) * 257
        image = Image.fromarray(grey.astype(np.uint16 if mode == "I;16" else np.int32))
        assert image.mode == mode
    else:
        image = pattern(1).convert(mode)
    fmt = {"CMYK": "JPEG", "YCbCr": "JPEG", "I;16": "PNG", "I": "TIFF"}.get(mode, "PNG")
    pixels = _rgb(_saved(image, fmt))
    assert pixels.shape == (40, 48, 3)


def test_sixteen_bit_grey_keeps_its_range() -> None:
    ramp = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    pixels = _rgb(_saved(Image.fromarray(ramp), "PNG"))
    assert pixels.min() == 0 and pixels.max() == 255  # scaled, not clipped to white


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(mode: str) -> None:
    rgba = pattern(2).convert("RGBA")
    alpha = np.zeros((40, 48), dtype=np.uint8)  # fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    image = rgba if mode == "RGBA" else rgba.convert(mode)
    pixels = _rgb(_saved(image, "PNG"))
    assert (pixels == 255).all()


def test_palette_with_transparency_index() -> None:
    image = pattern(3).convert("P")
    pixels = _rgb(_saved(image, "PNG", transparency=0))
    assert pixels.shape == (40, 48, 3)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _saved(pattern(4, size=(60, 30)), "JPEG", exif=exif.tobytes())
    assert load_image(data).size == (30, 60)


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the shape of a decompression bomb)."""
    data = bytearray(_saved(Image.new("1", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"print('hello')\n", "not_image"),
        (b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00", "not_image"),  # .DS_Store header
        (_png_with_size(20_000, 20_000), "too_many_pixels"),
        (_saved(Image.new("F", (8, 8)), "TIFF"), "unsupported_mode"),
    ],
)
def test_bad_input_raises_one_error_type(data: bytes, reason: str) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(data)
    assert info.value.reason == reason


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.jpg", size=(200, 160))
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert info.value.reason == "truncated"
    assert str(path) in str(info.value)
    with pytest.raises(ImageLoadError):  # reduced-scale decoding still reads every byte
        load_image(path, min_size=16)


def test_corrupt_jpeg_body() -> None:
    data = bytearray(_saved(pattern(5, size=(200, 160)), "JPEG"))
    data[400:] = bytes(len(data) - 400)
    with pytest.raises(ImageLoadError) as info:
        load_image(bytes(data))
    assert info.value.reason in {"corrupt", "truncated"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.reason == "missing"


def test_resize_and_center_crop_takes_the_middle() -> None:
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))  # blue middle third
    square = np.asarray(resize_and_center_crop(image, 50))
    assert square.shape == (50, 50, 3)
    assert (square[..., 2] > 200).all() and (square[..., 0] < 50).all()


def test_sixteen_bit_grey_converts_strip_by_strip() -> None:
    ramp = (np.arange(600, dtype=np.uint16)[:, None] * 100).repeat(40, axis=1)  # > one strip
    pixels = _rgb(_saved(Image.fromarray(ramp), "PNG"))
    expected = np.clip(ramp / 257 + 0.5, 0, 255).astype(np.uint8)
    assert (pixels[..., 0] == expected).all()


# --- the size policy and files that are not images -------------------------------------------

@pytest.mark.parametrize("size", [(20_000, 1), (1, 20_000), (60_000, 1), (2_600, 100)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_strips_are_refused_before_resizing(size: tuple[int, int], fmt: str) -> None:
    # Resized to a 256 px short side, a 20000 x 1 strip would take 5.1 M x 256 pixels (4 GB).
    data = _saved(Image.new("RGB", size), fmt)
    with pytest.raises(ImageLoadError) as info:
        load_image(data, min_size=256)
    assert info.value.reason == "bad_shape" and "strip" in info.value.message


def test_panorama_within_the_ratio_loads() -> None:
    square = resize_and_center_crop(load_image(_saved(Image.new("RGB", (2_400, 100)), "PNG")), 256)
    assert square.size == (256, 256)


def test_strip_given_as_an_array_or_image_is_refused() -> None:
    with pytest.raises(ImageLoadError):
        load_image(Image.new("RGB", (5_000, 2)))


def test_truncated_header_is_truncated() -> None:
    data = _saved(pattern(6, size=(120, 100)), "JPEG")
    with pytest.raises(ImageLoadError) as info:
        load_image(data[:62])  # inside the JPEG header
    assert info.value.reason == "truncated"


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts a blocking open() or read()."""
    def expire(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _special_files(folder: Path) -> dict[str, str]:
    """A named pipe, a folder named like a photo, a symlink loop: path -> expected reason."""
    os.mkfifo(folder / "pipe.jpg")
    (folder / "folder.jpg").mkdir()
    (folder / "loop1.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop1.jpg")
    return {"pipe.jpg": "not_a_file", "folder.jpg": "not_a_file", "loop1.jpg": "unreadable"}


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    for name, reason in _special_files(tmp_path).items():
        with _deadline(5), pytest.raises(ImageLoadError) as info:
            load_image(tmp_path / name)
        assert info.value.reason == reason, name


def test_files_over_the_size_limit_are_not_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:  # sparse: no disk space, no memory
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageLoadError) as info:
        load_image(huge)
    assert info.value.reason == "too_large"


# ---- HEIC/HEIF, what an iPhone saves (pillow-heif's opener; files made here by its encoder)


def test_heic_reads_as_the_photo_it_holds() -> None:
    photo = pattern(11, size=(96, 64))
    data = _saved(photo, "HEIF", quality=95)
    assert is_heif(data) and not is_heif(_saved(photo, "JPEG"))
    read = _rgb(data)
    assert read.shape == (64, 96, 3)
    assert np.abs(read.astype(int) - np.asarray(photo, int)).mean() < 6  # lossy, but the photo


def test_heic_rotation_is_applied_once() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # as a phone held upright saves it
    photo = pattern(4, size=(60, 30))
    upright = np.asarray(load_image(_saved(photo, "JPEG", quality=95, exif=exif.tobytes())), int)
    read = np.asarray(load_image(_saved(photo, "HEIF", quality=95, exif=exif.tobytes())), int)
    assert read.shape == upright.shape == (60, 30, 3)
    turned_twice = np.rot90(upright, 2)  # the same shape, had it been rotated the other way
    assert np.abs(read - upright).mean() < np.abs(read - turned_twice).mean() / 3


def test_a_heic_bomb_is_refused_before_decoding() -> None:
    data = bytearray(_saved(pattern(1, size=(64, 64)), "HEIF"))
    at = data.find(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", 50_000, 50_000)  # the size its header claims
    with pytest.raises(ImageLoadError) as caught:
        load_image(bytes(data))
    assert caught.value.reason == "too_many_pixels"


def test_a_heic_of_many_images_decodes_its_primary_one_only() -> None:
    frames = [pattern(i, size=(32, 32)) for i in range(40)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="HEIF", save_all=True, append_images=frames[1:])
    assert Image.open(buffer).n_frames == 40
    assert load_image(buffer.getvalue()).size == (32, 32)


def test_without_pillow_heif_a_heic_says_how_to_read_it(tmp_path: Path) -> None:
    """An installation without pillow-heif (its import blocked): HEIC is reported with the
    fix, every other format still reads."""
    import subprocess
    import sys

    (tmp_path / "a.heic").write_bytes(_saved(pattern(2), "HEIF"))
    write_image(tmp_path / "b.jpg", seed=3)
    script = ("import sys; sys.modules['pillow_heif'] = None\n"
              "from petal.data.image import load_image, ImageLoadError\n"
              f"print(load_image({str(tmp_path / 'b.jpg')!r}).size)\n"
              f"try: load_image({str(tmp_path / 'a.heic')!r})\n"
              "except ImageLoadError as e: print(e.reason, e.message)\n")
    said = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout
    assert said.splitlines() == ["(48, 40)", "heif_unsupported a HEIC/HEIF photo, which this "
                                 "installation cannot read: pip install pillow-heif"]


def test_a_truncated_heic_is_called_damaged_not_unknown() -> None:
    data = _saved(pattern(6, size=(64, 64)), "HEIF")
    for cut in (data[:len(data) // 2], data[:40]):
        with pytest.raises(ImageLoadError) as caught:
            load_image(cut)
        assert caught.value.reason in {"corrupt", "truncated"}
    assert is_heif(bytearray(data)) and is_heif(memoryview(data))
    assert not is_heif(b"") and not is_heif(b"\x00\x00\x00\x08ftyp")
