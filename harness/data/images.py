"""Encoded images: the split type of image datasets too large to hold decoded (ImageNet, CIFAR at scale).

An `EncodedImageSplit` keeps each image as its encoded file bytes (PNG, JPEG, ...) and decodes a batch
when a model asks for it: `split.x[start:stop]` is a float32 array (n, H, W, C) in [0, 1], the same
inputs an `ArraySplit` holds, so every classifier reads either. Decoding applies the split's
preprocessing, in this order (torchvision's and OpenOOD's test transforms):
- `mode`: the Pillow mode images are converted to ("RGB" by default; "L" for greyscale);
- `resize`: the shorter side is resized to this many pixels (bilinear), the aspect ratio kept;
- `center_crop`: the central square of this side is cut out.
Images must all come out of one size (set `resize` and `center_crop` for datasets of mixed sizes).
The model's own image processor (resizing, normalisation) runs after this, on the decoded pixels.

The fingerprint covers the split name, the preprocessing, each image's bytes, the labels and the ids,
so two copies of the same files (a mirror and the HF cache) share their cached outputs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.data import checked_positions
from harness.errors import HarnessError

#: preprocessing keys an image split accepts: `mode` (a Pillow mode, or "native" to keep each file's own),
#: `resize` (the shorter side), `center_crop` (a square side), `size` ((height, width): an exact resize)
IMAGE_PREPROCESSING = ("mode", "resize", "center_crop", "size")
#: the `mode` that keeps each file's own mode (local image folders without dataset.params.image_mode)
NATIVE_MODE = "native"


def decode_image(
    blob: bytes,
    mode: str = "RGB",
    resize: int | None = None,
    crop: int | None = None,
    size: tuple[int, int] | None = None,
) -> NDArray[Any]:
    """One encoded image as a float32 (H, W, C) array in [0, 1], after mode, exact size (height, width;
    bilinear, only when it differs), resize (the shorter side) and center crop."""
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as opened:
        image = opened.copy() if mode == NATIVE_MODE else opened.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    if resize:
        width, height = image.size
        scale = resize / min(width, height)
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
    if crop:
        width, height = image.size
        if width < crop or height < crop:
            raise HarnessError(f"an image of {width}x{height} is smaller than center_crop {crop}", fix="set resize")
        left, top = round((width - crop) / 2), round((height - crop) / 2)
        image = image.crop((left, top, left + crop, top + crop))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[..., None] if pixels.ndim == 2 else pixels


class DecodedImages:
    """The images of an EncodedImageSplit as an array-like: slicing decodes the rows asked for."""

    def __init__(self, split: EncodedImageSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def shape(self) -> tuple[int, ...]:
        first = self[0:1].shape[1:] if len(self.split) else (0, 0, 0)
        return (len(self.split), *first)

    def __getitem__(self, key: Any) -> NDArray[np.float32]:
        rows = range(len(self.split))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.intp).tolist()
        if isinstance(rows, int):
            rows = [rows]
        images = [self.split.decode(i) for i in rows]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            raise HarnessError(
                f"images of split {self.split.name!r} decode to different sizes {sorted(shapes)[:3]}",
                where=self.split.source or f"split {self.split.name}",
                fix="set the dataset's preprocessing resize and center_crop",
            )
        if not images:
            return np.zeros((0, 1, 1, 1), np.float32)
        return np.stack(images).astype(np.float32, copy=False)

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class EncodedImageSplit:
    """Encoded images `blobs` (n), integer labels `y` (n; -1 unlabelled), unique string `ids` (n)."""

    name: str
    blobs: tuple[bytes, ...]
    y: NDArray[np.int64]
    ids: list[str]
    #: (key, value) pairs of IMAGE_PREPROCESSING
    preprocessing: tuple[tuple[str, Any], ...] = ()
    source: str = field(default="", compare=False)
    fingerprint: str = field(init=False)
    has_inputs = True

    def __post_init__(self) -> None:
        n = len(self.ids)
        where = self.source or f"split {self.name}"
        if len(self.blobs) != n or self.y.shape != (n,):
            raise HarnessError(
                f"split {self.name!r} has {len(self.blobs)} images, {self.y.shape[0]} labels and {n} ids", where=where
            )
        if len(set(self.ids)) != n:
            raise HarnessError(f"split {self.name!r} has duplicate sample ids", where=where)
        unknown = sorted(k for k, _ in self.preprocessing if k not in IMAGE_PREPROCESSING)
        if unknown:
            raise HarnessError(f"unknown image preprocessing {unknown}", where=where, fix=f"use {IMAGE_PREPROCESSING}")
        digest = hashlib.sha256(b"encoded-images\x00" + self.name.encode())
        digest.update(repr(sorted(self.preprocessing)).encode())
        for blob in self.blobs:
            digest.update(hashlib.sha256(blob).digest())
        digest.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        digest.update("\x00".join(self.ids).encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def x(self) -> DecodedImages:
        return DecodedImages(self)

    def decode(self, row: int) -> NDArray[Any]:
        from PIL import Image

        options = dict(self.preprocessing)
        try:
            size = options.get("size")
            return decode_image(
                self.blobs[row],
                str(options.get("mode", "RGB")),
                int(options["resize"]) if options.get("resize") else None,
                int(options["center_crop"]) if options.get("center_crop") else None,
                (int(size[0]), int(size[1])) if size else None,
            )
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # Pillow: not an image, truncated
            raise HarnessError(
                f"image {self.ids[row]!r} of split {self.name!r} cannot be decoded ({error})",
                where=self.source or f"split {self.name}",
            ) from None

    def head(self, n: int) -> EncodedImageSplit:
        return EncodedImageSplit(self.name, self.blobs[:n], self.y[:n], self.ids[:n], self.preprocessing, self.source)

    def take(self, indices: Sequence[int]) -> EncodedImageSplit:
        """The images at `indices`, in that order (images, labels and ids together)."""
        rows = checked_positions(indices, len(self), self.name)
        return EncodedImageSplit(
            self.name,
            tuple(self.blobs[i] for i in rows),
            self.y[np.asarray(rows, dtype=np.intp)],
            [self.ids[i] for i in rows],
            self.preprocessing,
            self.source,
        )
