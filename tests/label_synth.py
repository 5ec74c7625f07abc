"""Synthetic label volumes for the object tests: a partition of space into touching objects,
written as OME-TIFF with a voxel size, and a fixture forcing small boxes and frequent merges."""

import numpy as np
import pytest
import tifffile

from neurostation.analysis.objects import grouping, inputs

VOXEL_UM = (0.5, 0.7, 2.0)  # x, y, z


def write_ome(path, zyx, voxel_um=VOXEL_UM):
    tifffile.imwrite(path, zyx, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", **{f"PhysicalSize{a}": v for a, v in zip("XYZ", voxel_um)},
                               **{f"PhysicalSize{a}Unit": "µm" for a in "XYZ"}})
    return str(path)


def partition(shape, seeds, seed=0, holes=0.2):
    """Labels (z, y, x) of the nearest of `seeds` random points (every object touches others),
    a fraction `holes` of the voxels set to background; labels numbered with gaps."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 1, (seeds, 3)) * shape
    grid = np.stack(np.indices(shape), axis=-1).reshape(-1, 1, 3)
    nearest = np.argmin(((grid - points) ** 2).sum(axis=-1), axis=1).reshape(shape)
    labels = (nearest * 3 + 1).astype(np.uint32)
    labels[rng.uniform(size=shape) < holes] = 0
    return labels


@pytest.fixture
def small_boxes(monkeypatch):
    """Boxes of 5 x 4 x 3 voxels: every object spans several boxes; box results are merged
    every few boxes, so merges of merges are exercised too."""
    monkeypatch.setattr(inputs, "box_shape", lambda source: (5, 4, 3))
    monkeypatch.setattr(grouping, "FOLD_ROWS", 50)


def assert_refused(result, message, folder):
    """The CLI run `result` stopped with exit 2 and one `error:` line holding `message`, and
    left nothing in `folder` (no partial output)."""
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert list(folder.iterdir()) == []
