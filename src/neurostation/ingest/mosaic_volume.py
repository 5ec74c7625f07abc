"""The stitched mosaic as a Neuroglancer precomputed volume, blended box by box.

Each box of the volume blends, section by section, only the tiles whose footprint meets it
(read whole, so the subpixel shift is the same as on the whole canvas) into accumulators of
the box's size: memory follows the box, never the mosaic, and the volume equals the TIFF
mosaic pixel for pixel. Writing, pyramid, resumability and the completion record are the
chunk engine's (`storage.write`), as for `neurostation ingest`.
"""

import numpy as np

from .mosaic import blend, overlapping
from .tiles import read_tile
from .volume import write_volume

# Bytes of mosaic per box: blending holds two floating-point accumulators of the box (8 bytes
# a pixel for 8- and 16-bit tiles) and a few copies of one tile, so a box of 4 MiB of uint8
# needs some 50 MiB per process.
BOX_BUDGET = 4 << 20


class MosaicSource:
    """The blended mosaic (x, y, z = section) as a source of boxes for the chunk engine;
    sections are top-left aligned on a common canvas of (height, width)."""

    def __init__(self, sections, tile_shape, dtype, canvas):
        self.tile_shape, self.dtype, self.channels = tuple(tile_shape), np.dtype(dtype), 1
        self.layers = [(list(s.tiles), np.asarray(s.positions, float)) for s in sections]
        self.shape = (int(canvas[1]), int(canvas[0]), len(sections))

    def read(self, box):
        (x0, y0, z0), (x1, y1, z1) = box.start, box.stop
        out = np.zeros(box.shape + (1,), self.dtype, order="F")
        for z in range(z0, z1):
            tiles, positions = self.layers[z]
            picked = overlapping(positions, self.tile_shape, (y0, x0), (y1 - y0, x1 - x0))
            pixels = (read_tile(*tiles[i], self.tile_shape) for i in picked)
            plane = blend(pixels, positions[picked], (y1 - y0, x1 - x0), self.dtype, (y0, x0))
            out[:, :, z - z0, 0] = plane.T
        return out


def write_mosaic_volume(url, sections, tile_shape, dtype, canvas, voxel, options, jobs):
    """Blend the sections into a precomputed volume at `url` with its whole pyramid; voxel is
    (size (x, y, z), unit, size in nm)."""
    size, unit, voxel_nm = voxel
    source = MosaicSource(sections, tile_shape, dtype, canvas)
    record = {"command": "stitch", "sources": [name for s in sections for name, _ in s.tiles],
              "sections": len(sections), "voxel_size": list(size), "voxel_unit": unit}
    params = {"tiles": [[name, path] for s in sections for name, path in s.tiles],
              "positions": [np.round(s.positions, 6).tolist() for s in sections],
              "tile_shape": list(tile_shape), "canvas": list(canvas)}
    write_volume(source, url, voxel_nm, options, jobs, params, record, budget=BOX_BUDGET)
