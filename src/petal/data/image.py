"""The one image loader petal uses everywhere: training, evaluation, prediction, serving.

`load_image` returns an 8-bit RGB PIL image with EXIF orientation applied, or raises
`ImageLoadError` with a reason a person can act on. Nothing else in petal opens images.
"""

from __future__ import annotations

import io
import warnings
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 64 megapixels: far above any photo petal needs (it trains at <= 512 px), far below
# the size where decoding one file can exhaust memory (a decompression bomb).
MAX_PIXELS = 64_000_000

# Modes petal converts to RGB. Anything else (e.g. float "F", "LAB", "HSV") has no
# agreed mapping to display colours and is reported as unsupported.
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
     "I", "I;16", "I;16L", "I;16B", "I;16N"}
)

ImageSource = str | PathLike | bytes | Image.Image


class ImageLoadError(Exception):
    """An image that cannot be used. `reason` is a short machine-readable kind."""

    def __init__(self, reason: str, message: str, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.reason = reason
        self.message = message
        self.source = source


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, bytes) else "<image>"


def open_image(source: str | PathLike | bytes) -> Image.Image:
    """Open (header only) and check an image; raises ImageLoadError. Pixels not decoded yet."""
    name = _describe(source)
    if isinstance(source, bytes):
        if not source:
            raise ImageLoadError("empty", "file is empty (0 bytes)", name)
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        try:
            if stream.stat().st_size == 0:
                raise ImageLoadError("empty", "file is empty (0 bytes)", name)
        except FileNotFoundError as exc:
            raise ImageLoadError("missing", "file does not exist", name) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageLoadError("not_image", "not an image file (unrecognised format)",
                                 name) from exc
        raise ImageLoadError("too_many_pixels", f"decompression bomb refused: {exc}", name) from exc
    except OSError as exc:
        raise ImageLoadError("unreadable", f"cannot read file: {exc}", name) from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageLoadError(
            "too_many_pixels",
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {MAX_PIXELS:,} "
            "(possible decompression bomb)",
            name,
        )
    if image.mode not in SUPPORTED_MODES:
        mode = image.mode
        image.close()
        raise ImageLoadError("unsupported_mode", f"unsupported pixel mode {mode!r}", name)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any supported mode to 8-bit RGB; transparency is composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I"):
        # 16- or 32-bit integer grey: scale the 16-bit range down to 8 bits.
        array = np.asarray(image, dtype=np.float64)
        scale = 257.0 if array.max(initial=0) > 255 else 1.0
        grey = np.clip(array / scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in {"P", "PA"}:
        image = image.convert("RGBA")
    elif mode in {"LA", "La", "RGBa"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def load_image(source: ImageSource, min_size: int | None = None) -> Image.Image:
    """Decode an image file, bytes or PIL image into 8-bit RGB, EXIF orientation applied.

    With `min_size`, a JPEG may be decoded at a reduced scale (libjpeg's 1/2, 1/4, 1/8)
    as long as both sides stay >= min_size: several times faster, and every byte of the
    file is still read, so truncation is still detected.
    Raises ImageLoadError for anything that is not a usable image: missing or empty file,
    not an image, truncated or corrupt data, too many pixels, unsupported mode.
    """
    name = _describe(source)
    image = source if isinstance(source, Image.Image) else open_image(source)
    try:
        if min_size is not None and image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        image.load()  # full decode: a truncated or corrupt file fails here
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc)
        reason = "truncated" if "truncated" in text else "corrupt"
        raise ImageLoadError(reason, f"cannot decode image: {text}", name) from exc


def resize_and_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to `size` (antialiased) and crop the central size x size square.

    The single geometric transform between a photo and a stored or predicted image, so
    the decoded cache and `predict` see identical pixels.
    """
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return resized.crop((left, top, left + size, top + size))
