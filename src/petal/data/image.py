"""The one image loader petal uses everywhere: training, evaluation, prediction, serving.

`load_image` returns an 8-bit RGB PIL image with EXIF orientation applied, or raises
`ImageLoadError` with a reason a person can act on. Nothing else in petal opens images.

One size policy bounds what any file can cost, whatever its bytes claim: files over
MAX_FILE_BYTES, images over MAX_PIXELS and strips whose long side is over MAX_ASPECT_RATIO
times the short one are refused before their pixels are decoded (a 1-pixel-high strip is
tiny to decode, but resizing its short side to 256 px makes it 256 times longer too).

HEIC/HEIF (what an iPhone saves) is read through pillow-heif's Pillow opener, under the same
policy; libheif applies the photo's rotation itself (and resets its EXIF orientation, so it
is not applied twice). Only the primary image of a container is decoded, never its
thumbnails, depth or auxiliary images. Without pillow-heif, a HEIC file is reported with how
to add it, and every other format still reads.
"""

from __future__ import annotations

import io
import warnings
from os import PathLike

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from petal.errors import PetalError
from petal.fsutil import FileTooLarge, NotARegularFile, read_limited

try:
    from pillow_heif import register_heif_opener
except ImportError:  # an installation without it: every other format still reads
    HEIF_READABLE = False
else:
    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    HEIF_READABLE = True

# ISO base media brands of HEIF images (HEVC-coded); AVIF's "avif"/"avis" are Pillow's own.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm",
                         b"hevs"})

# 64 megapixels: far above any photo petal needs (it trains at <= 512 px), far below
# the size where decoding one file can exhaust memory (a decompression bomb).
MAX_PIXELS = 64_000_000
# Wider than the panoramas phones take (about 8:1); a photo is cropped to its central square.
MAX_ASPECT_RATIO = 25
# A 64-megapixel photo is 10-40 MB as JPEG, up to ~150 MB as PNG.
MAX_FILE_BYTES = 256 * 2**20

# Modes petal converts to RGB. Anything else (e.g. float "F", "LAB", "HSV") has no
# agreed mapping to display colours and is reported as unsupported.
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
     "I", "I;16", "I;16L", "I;16B", "I;16N"}
)

ImageSource = str | PathLike | bytes | Image.Image


class ImageLoadError(PetalError):
    """An image that cannot be used (a PetalError: the message says why). `reason` is a short
    machine-readable kind."""

    def __init__(self, reason: str, message: str, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.reason = reason
        self.message = message
        self.source = source


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, bytes) else "<image>"


def read_image_file(path: str | PathLike) -> bytes:
    """The bytes of an image file; ImageLoadError for a missing, special or oversized file."""
    name = str(path)
    try:
        data = read_limited(path, MAX_FILE_BYTES)
    except FileNotFoundError as exc:
        raise ImageLoadError("missing", "file does not exist", name) from exc
    except NotARegularFile as exc:
        raise ImageLoadError("not_a_file", "not a regular file (a named pipe, socket, device "
                             "or folder)", name) from exc
    except FileTooLarge as exc:
        raise ImageLoadError("too_large", f"file is over {MAX_FILE_BYTES // 2**20} MiB, the "
                             "largest image file petal reads", name) from exc
    except OSError as exc:
        raise ImageLoadError("unreadable", f"cannot read file: {exc.strerror or exc}",
                             name) from exc
    except ValueError as exc:  # a NUL in the name: no file can have it
        raise ImageLoadError("missing", "no file has a NUL character in its name",
                             name) from exc
    if not data:
        raise ImageLoadError("empty", "file is empty (0 bytes)", name)
    return data


def check_dimensions(width: int, height: int, name: str = "") -> None:
    """ImageLoadError unless width x height fits the size policy (module docstring)."""
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            "too_many_pixels",
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {MAX_PIXELS:,} "
            "(possible decompression bomb)",
            name,
        )
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise ImageLoadError(
            "bad_shape",
            f"{width}x{height} is a strip, not a photo: one side is over {MAX_ASPECT_RATIO} "
            "times the other",
            name,
        )


def _decode_error(exc: Exception, name: str) -> ImageLoadError:
    """A failure inside Pillow as an ImageLoadError. Pillow's format plugins raise many types
    on malformed data (OSError, SyntaxError, ValueError, struct.error, IndexError, ...), so
    callers catch Exception around decoding and hand it here."""
    text = str(exc) or type(exc).__name__
    reason = "truncated" if "truncated" in text.lower() else "corrupt"
    return ImageLoadError(reason, f"cannot decode image: {text}", name)


def is_heif(data: bytes) -> bool:
    """Whether `data` starts as a HEIF image file does: an `ftyp` box naming a HEVC brand."""
    data = bytes(data[:4096])
    if data[4:8] != b"ftyp" or len(data) < 16:
        return False
    size = min(int.from_bytes(data[:4], "big"), len(data), 4096)
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, size - 3, 4)}
    return bool(brands & HEIF_BRANDS)


def open_image(source: str | PathLike | bytes) -> Image.Image:
    """Open (header only) and check an image; raises ImageLoadError. Pixels not decoded yet."""
    name = _describe(source)
    data = source if isinstance(source, bytes) else read_image_file(source)
    if not data:
        raise ImageLoadError("empty", "file is empty (0 bytes)", name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        if is_heif(data) and not HEIF_READABLE:
            raise ImageLoadError("heif_unsupported", "a HEIC/HEIF photo, which this "
                                 "installation cannot read: pip install pillow-heif",
                                 name) from exc
        if is_heif(data):
            raise ImageLoadError("corrupt", "a HEIC/HEIF file that cannot be read (truncated "
                                 "or damaged)", name) from exc
        raise ImageLoadError("not_image", "not an image file (unrecognised format)", name) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError("too_many_pixels", f"decompression bomb refused: {exc}", name) from exc
    except Exception as exc:  # see _decode_error
        raise _decode_error(exc, name) from exc
    try:
        check_dimensions(*image.size, name)
    except ImageLoadError:
        image.close()
        raise
    if image.mode not in SUPPORTED_MODES:
        mode = image.mode
        image.close()
        raise ImageLoadError("unsupported_mode", f"unsupported pixel mode {mode!r}", name)
    return image


# Rows converted at a time from 16/32-bit grey: a whole 64-megapixel image in floats
# would take 0.25-0.5 GB per temporary array.
_STRIP_ROWS = 256


def _grey_to_rgb(image: Image.Image) -> Image.Image:
    """16- or 32-bit integer grey to 8-bit RGB; a 16-bit range is scaled down to 8 bits."""
    width, height = image.size
    strips = [(0, top, width, min(top + _STRIP_ROWS, height))
              for top in range(0, height, _STRIP_ROWS)]
    peak = max(int(np.asarray(image.crop(box)).max(initial=0)) for box in strips)
    scale = np.float32(257.0 if peak > 255 else 1.0)
    grey = np.empty((height, width), np.uint8)
    for box in strips:
        rows = np.asarray(image.crop(box), dtype=np.float32)
        grey[box[1]:box[3]] = np.clip(rows / scale + np.float32(0.5), 0, 255)
    return Image.fromarray(grey).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any supported mode to 8-bit RGB; transparency is composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I"):
        return _grey_to_rgb(image)
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
    Raises ImageLoadError for anything that is not a usable image: missing, empty, special
    or oversized file, not an image, truncated or corrupt data, too many pixels, a strip,
    unsupported mode, too little memory to decode.
    """
    name = _describe(source)
    if isinstance(source, Image.Image):
        check_dimensions(*source.size, name)
    image = source if isinstance(source, Image.Image) else open_image(source)
    try:
        if min_size is not None and image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        image.load()  # full decode: a truncated or corrupt file fails here
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError("out_of_memory", "not enough memory to decode this image",
                             name) from exc
    except Exception as exc:  # see _decode_error
        raise _decode_error(exc, name) from exc


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
