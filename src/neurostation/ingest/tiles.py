"""Tiles of a mosaic on disk: whole tiles for blending, and lazy regions for registration,
which then reads only the overlap windows (tifffile's zarr view decodes just the strips or
tiles a region touches)."""

import os

import numpy as np

from ..errors import UserError
from ..io.sources import zarr_view
from ..io.tiff import iter_tiff_blocks, open_tiff


def about(name, path):
    """Prefix for messages about a tile: its name, when the file is called otherwise."""
    return "" if name == os.path.basename(path) else f"tile {name}: "


def read_tile(name, path, shape):
    """The pixels of one tile as a 2D array."""
    try:
        plane = next(iter_tiff_blocks(path))
    except UserError as exc:
        raise UserError(f"{about(name, path)}{exc}") from None
    return plane.reshape(shape)


def read_region(name, path, rows, cols):
    """Rows x cols (slices) of a 2D tile, decoding only what they touch."""
    try:
        with open_tiff(path) as tif:
            view = zarr_view(tif)
            where = iter((rows, cols))
            # the file may carry axes of length 1 (e.g. a 1-plane stack): index them at 0
            key = tuple(0 if n == 1 else next(where) for n in view.shape)
            return np.asarray(view[key])
    except UserError as exc:
        raise UserError(f"{about(name, path)}{exc}") from None
    except Exception as exc:  # tifffile/imagecodecs raise many types on damaged data
        raise UserError(f"{about(name, path)}cannot read the pixels of TIFF "
                        f"{os.path.basename(path)} (truncated or corrupt?): {exc}") from None


class TileFile:
    """A 2D tile on disk with its shape; slicing it gives a lazy region (picklable, small)."""

    def __init__(self, name, path, shape):
        self.name, self.path, self.shape = name, path, tuple(shape)

    def __getitem__(self, key):
        return TileRegion(self, key)


class TileRegion:
    """A region of a tile, read when it is turned into an array (np.asarray)."""

    def __init__(self, tile, key):
        self.tile, self.key = tile, key

    def __array__(self, dtype=None, copy=None):
        data = read_region(self.tile.name, self.tile.path, *self.key)
        return data if dtype is None else data.astype(dtype, copy=False)
