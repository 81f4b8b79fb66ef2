"""Image tools on Pillow: convert between formats, resize, and rotate.

Every tool opens the upload the same way: only the formats we accept are decoded (so a renamed
file cannot reach Pillow's riskier decoders), the pixel count is checked against a
decompression-bomb limit before decoding, and the EXIF orientation is applied first, so the tool
works on the picture as the user sees it. A tool whose output can be bigger than its input
(resize up, rotate by an odd angle) works out the output's size from the header and refuses with
``output_too_large`` before a pixel is decoded: a small PNG must not cost gigabytes. Animated or
multi-page files are reduced to their first frame. Positive rotation angles turn clockwise, as in
the PDF and video tools.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, Self

from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.tools.base import (
    MB,
    BaseTool,
    InvalidInput,
    OutputTooLarge,
    ToolContext,
    derived_name,
)

MAX_SIDE = 10_000
# Pillow's own default bomb limit (1 GiB of 32-bit pixels / 3), kept here so that no other module
# turning Pillow's global off (Image.MAX_IMAGE_PIXELS = None) can unbound our decoding.
MAX_INPUT_PIXELS = 89_478_485
# Pillow holds RGB and RGBA at 4 bytes a pixel, and an odd-angle rotation keeps the decoded
# input, its RGBA copy and the output at once: with the output (and so the input) at most 50 MP
# that peaks near 600 MB, inside the 1 GB a tool may use. An output no bigger than its input
# (a quarter turn, a resize down) is never refused: its cost is bounded by the input's limit.
MAX_OUTPUT_PIXELS = 50_000_000
_QUARTER_TURN_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height

# Pillow format name → (extension, content type) of what we write.
FORMATS = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", "image/jpeg"),
    "WEBP": (".webp", "image/webp"),
    "GIF": (".gif", "image/gif"),
    "BMP": (".bmp", "image/bmp"),
    "TIFF": (".tiff", "image/tiff"),
}
# Decoders allowed to run on an upload (camera JPEGs may come back as format "MPO").
READABLE = tuple(FORMATS)
# Modes each writer takes as they are; anything else is converted first.
WRITABLE_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "BMP": {"1", "L", "P", "RGB"},  # Pillow writes RGBA BMPs, but few viewers show them
    "PNG": {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
    "GIF": {"1", "L", "LA", "P", "RGB", "RGBA"},  # Pillow builds the palette itself
    "TIFF": {"1", "L", "LA", "I", "I;16", "F", "P", "RGB", "RGBA", "CMYK"},
}
HAS_ALPHA = {"PNG", "WEBP", "GIF", "TIFF"}


class ConvertParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["png", "jpeg", "webp", "gif", "bmp", "tiff"] = "png"
    quality: int = Field(default=90, ge=1, le=100, description="For JPEG and WebP.")


class ResizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(default=None, ge=1, le=MAX_SIDE)
    height: int | None = Field(default=None, ge=1, le=MAX_SIDE)
    keep_aspect: bool = Field(
        default=True, description="Keep the proportions: fit inside width x height."
    )

    @model_validator(mode="after")
    def _one_side_at_least(self) -> Self:
        if self.width is None and self.height is None:
            raise ValueError("give a width, a height, or both")
        return self


class RotateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    angle: int = Field(
        default=90, ge=-360, le=360, description="Degrees clockwise; the canvas grows to fit."
    )


class _ImageTool(BaseTool):
    """What the three image tools share; it has no slug, so it is not registered itself."""

    category = "image"
    mode = "async"
    accepts: ClassVar[dict[str, str]] = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
        ".gif": "image/gif",
        ".bmp": "image/bmp",
        ".tiff": "image/tiff",
    }
    max_size = 50 * MB
    max_output_pixels: ClassVar[int] = MAX_OUTPUT_PIXELS
    made: ClassVar[str] = "converted"  # "the rotated image would be ..."

    def output_size(self, params: BaseModel, size: tuple[int, int]) -> tuple[int, int]:
        """The output's (width, height) for an upright input of ``size``: the same by default."""
        return size

    def open(self, ctx: ToolContext) -> tuple[Image.Image, str]:
        """``open_image``, refusing first an output that would pass ``max_output_pixels``."""
        image, fmt = open_image(ctx, lambda sizes: self.check_output(ctx.params, sizes))
        self.check_output(ctx.params, [image.size])  # exact, now the orientation is certain
        return image, fmt

    def check_output(self, params: BaseModel, sizes: Sequence[tuple[int, int]]) -> None:
        """Raise ``OutputTooLarge`` when, for every size the upright input may have, the output
        would grow past ``max_output_pixels``."""
        too_large = []
        for size in sizes:
            width, height = self.output_size(params, size)
            if width * height <= max(self.max_output_pixels, size[0] * size[1]):
                return
            too_large.append((width, height))
        width, height = too_large[0]
        raise OutputTooLarge(
            f"the {self.made} image would be {width:,} x {height:,} pixels "
            f"({width * height / 1e6:.1f} megapixels); the limit is "
            f"{self.max_output_pixels / 1e6:g} megapixels"
        )


class ImageConvert(_ImageTool):
    slug = "image-convert"
    name = "Convert image"
    description = "Convert an image to PNG, JPEG, WebP, GIF, BMP or TIFF (transparency on white)."
    Params = ConvertParams

    def run(self, ctx: ToolContext) -> None:
        params: ConvertParams = ctx.params  # type: ignore[assignment]
        image, _ = self.open(ctx)
        ctx.progress(50, "converting")
        save_image(ctx, image, params.format.upper(), "converted", quality=params.quality)


class ImageResize(_ImageTool):
    slug = "image-resize"
    name = "Resize image"
    description = (
        "Resize an image to a width and/or height (up to 10000 px); with keep_aspect the image "
        "fits inside the box, otherwise it is stretched to it."
    )
    Params = ResizeParams
    made = "resized"

    def output_size(self, params: BaseModel, size: tuple[int, int]) -> tuple[int, int]:
        assert isinstance(params, ResizeParams)
        return target_size(size, params.width, params.height, params.keep_aspect)

    def run(self, ctx: ToolContext) -> None:
        params: ResizeParams = ctx.params  # type: ignore[assignment]
        image, fmt = self.open(ctx)
        size = self.output_size(params, image.size)
        ctx.progress(30, "resizing")
        if image.mode in ("1", "P"):
            # Pillow resizes palette images with NEAREST only; go to full colour to resample.
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        image = image.resize(size, Image.Resampling.LANCZOS)
        ctx.progress(70, "saving")
        save_image(ctx, image, fmt, "resized")


class ImageRotate(_ImageTool):
    slug = "image-rotate"
    name = "Rotate image"
    description = "Rotate an image clockwise by any whole angle (-360..360); the canvas grows."
    Params = RotateParams
    made = "rotated"

    def output_size(self, params: BaseModel, size: tuple[int, int]) -> tuple[int, int]:
        assert isinstance(params, RotateParams)
        return rotated_size(size, params.angle)

    def run(self, ctx: ToolContext) -> None:
        params: RotateParams = ctx.params  # type: ignore[assignment]
        image, fmt = self.open(ctx)
        ctx.progress(30, "rotating")
        image = rotate(image, params.angle, transparent_corners=fmt in HAS_ALPHA)
        ctx.progress(70, "saving")
        save_image(ctx, image, fmt, "rotated")


def open_image(
    ctx: ToolContext, before_decode: Callable[[list[tuple[int, int]]], None] | None = None
) -> tuple[Image.Image, str]:
    """The upload decoded and upright, and the format to write it back in.

    ``before_decode`` gets the sizes the upright picture may have (one, or both orientations
    when only decoding would tell) while only the header has been read, and may raise.
    """
    source = ctx.require_input()
    path = source.path()
    try:
        with Image.open(path, formats=READABLE) as opened:
            width, height = opened.size
            if too_many_pixels(width, height):
                raise InvalidInput(
                    f"the image is {width:,} x {height:,} pixels "
                    f"({width * height / 1e6:.1f} megapixels); at most "
                    f"{MAX_INPUT_PIXELS / 1e6:.1f} megapixels can be opened here",
                    code="image_too_large",
                )
            if before_decode is not None:
                before_decode(_upright_sizes(opened))
            opened.load()
            fmt = "JPEG" if opened.format == "MPO" else (opened.format or "PNG")
            image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check, in Image.open: an error past twice its limit, and a warning past
        # it (an error too where warnings are turned into errors). Either way, too big for us.
        raise InvalidInput(
            f"the image is more than the {MAX_INPUT_PIXELS / 1e6:.1f} megapixels "
            "that can be opened here",
            code="image_too_large",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # UnidentifiedImageError is an OSError: the file is no image we read, or it is broken.
        reason = str(exc).replace(str(path), source.filename)[:300] or type(exc).__name__
        raise InvalidInput(f"not a readable image: {reason}") from None
    ctx.progress(20, "decoded")
    return image, fmt


def _upright_sizes(opened: Image.Image) -> list[tuple[int, int]]:
    """The sizes the picture may have once its EXIF orientation is applied, read without
    decoding: a PNG's eXIf chunk may follow the pixel data, and Pillow would decode to find it."""
    size = opened.size
    if opened.format == "PNG" and "exif" not in opened.info:
        return [size, (size[1], size[0])]
    if opened.getexif().get(0x0112, 1) in _QUARTER_TURN_ORIENTATIONS:
        return [(size[1], size[0])]
    return [size]


def target_size(
    size: tuple[int, int], width: int | None, height: int | None, keep_aspect: bool
) -> tuple[int, int]:
    """The output size: fit inside (width, height) keeping proportions, or exactly that."""
    old_w, old_h = size
    if not keep_aspect:
        return (width or old_w, height or old_h)
    scale = min(
        width / old_w if width else float("inf"),
        height / old_h if height else float("inf"),
    )
    return (max(1, round(old_w * scale)), max(1, round(old_h * scale)))


def rotated_size(size: tuple[int, int], angle: int) -> tuple[int, int]:
    """The size ``rotate`` gives an image of ``size``, found without touching a pixel: Pillow's
    own arithmetic for ``expand`` (the turned corners' bounding box, rounded outwards), step for
    step, so that the float rounding and so the result are exactly Pillow's."""
    width, height = size
    angle %= 360
    if angle in (0, 180):
        return size
    if angle in (90, 270):
        return (height, width)
    radians = -math.radians(-angle % 360.0)  # ``rotate`` hands Pillow -angle
    a, b = round(math.cos(radians), 15), round(math.sin(radians), 15)
    d, e = round(-math.sin(radians), 15), round(math.cos(radians), 15)
    cx, cy = width / 2, height / 2
    c = a * -cx + b * -cy + 0.0 + cx
    f = d * -cx + e * -cy + 0.0 + cy
    corners = ((0, 0), (width, 0), (width, height), (0, height))
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    return (
        math.ceil(max(xs)) - math.floor(min(xs)),
        math.ceil(max(ys)) - math.floor(min(ys)),
    )


def rotate(image: Image.Image, angle: int, *, transparent_corners: bool) -> Image.Image:
    """Rotate clockwise; quarter turns are exact (no resampling), others grow the canvas."""
    turns = {
        90: Image.Transpose.ROTATE_270,  # Pillow's constants turn counter-clockwise
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }
    angle %= 360
    if angle == 0:
        return image
    if angle in turns:
        return image.transpose(turns[angle])
    if transparent_corners:
        image = image.convert("RGBA")
        fill: tuple[int, ...] | int = (0, 0, 0, 0)
    else:
        # A format without alpha would otherwise get black corners; white is what people expect.
        image = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        fill = 255 if image.mode == "L" else (255, 255, 255)
    return image.rotate(-angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def save_image(
    ctx: ToolContext, image: Image.Image, fmt: str, tag: str, *, quality: int = 95
) -> None:
    """Write ``image`` as ``fmt`` into the temp dir and hand it to the output."""
    ext, content_type = FORMATS[fmt]
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc  # keeps the colours as they were
    path = ctx.temp_dir / f"output{ext}"
    try:
        _writable(image, fmt).save(path, fmt, **options)
    except (ValueError, OSError) as exc:
        # Exotic modes (16-bit, float) some writers refuse: the input's fault, not a crash.
        raise InvalidInput(
            f"cannot write this {image.mode} image as {fmt}: {str(exc)[:300]}",
            code="unsupported_image",
        ) from None
    ctx.progress(95, "saved")
    ctx.output.file(
        path, derived_name(ctx.require_input().filename, tag, ext, fallback="image"), content_type
    )


def _writable(image: Image.Image, fmt: str) -> Image.Image:
    if image.has_transparency_data and fmt not in HAS_ALPHA:
        # No alpha in this format: flatten onto white rather than let transparent areas go black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in WRITABLE_MODES[fmt]:
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def too_many_pixels(width: int, height: int) -> bool:
    """The decompression-bomb limit, applied before any pixel is decoded or allocated."""
    return width * height > MAX_INPUT_PIXELS
