"""`label --split`: watershed splitting of touching objects, exact by construction.

After the global labelling each object is processed alone inside its bounding box grown by one
voxel (where the volume allows): Euclidean distance to the background with the voxel size
(scipy distance_transform_edt, sampling=), seeds at the h-maxima of that distance (scikit-image
h_maxima), scikit-image's watershed of -distance masked to the object. Nothing outside the grown
box can change any of these, so the pieces are those of the same procedure on the whole volume
with that object alone. Pieces are numbered 1..N by their first voxel (x fastest, then y, then
z), as `label` numbers objects. Memory: the largest object's bounding box, some 50 bytes a voxel.
"""

import os

import numpy as np

from ..chunks.boxes import Box
from ..chunks.pool import run_tasks
from .components import REACH, first_voxels, local_labels

BATCH_VOXELS = 1 << 22  # bounding-box voxels of the objects handed to one task
BATCH_OBJECTS = 4096


def split_object(mask, spacing, h, connectivity):
    """Watershed pieces (0 outside, 1..p) of one object's (z, y, x) mask and p; None and the
    number of seeds when there are fewer than two (the object stays whole)."""
    from scipy import ndimage  # imported here: plain labelling does not need them
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    distance = ndimage.distance_transform_edt(mask, sampling=spacing)
    footprint = ndimage.generate_binary_structure(3, REACH[connectivity])
    seeds, n = ndimage.label(h_maxima(distance, h, footprint=footprint) & mask, footprint)
    if n < 2:
        return None, n
    return watershed(-distance, seeds, mask=mask, connectivity=REACH[connectivity]), n


class SplitTask:
    """Split a batch of objects [(label, first voxel, bounding box lo, hi)], each read from the
    foreground in its grown bounding box; a split object's pieces (x, y, z) are saved as
    `folder`/<label>.npy. Returns [(label, box start or None, first voxel of each piece)]."""

    def __init__(self, foreground, shape, voxel_nm, h, connectivity, folder):
        self.foreground, self.shape, self.connectivity, self.folder = (
            foreground, tuple(shape), connectivity, folder)
        self.spacing, self.h = tuple(voxel_nm)[::-1], h

    def _one(self, label, first, lo, hi):
        start = tuple(max(0, int(a) - 1) for a in lo)
        box = Box(start, tuple(min(n, int(b) + 2) for b, n in zip(hi, self.shape)))
        labels, _ = local_labels(self.foreground.mask(box), self.connectivity)
        sx, sy, _ = self.shape
        at = (first % sx, first // sx % sy, first // (sx * sy))
        inside = labels == labels[tuple(a - s for a, s in zip(at, start))]
        pieces, n = split_object(np.ascontiguousarray(inside.transpose(2, 1, 0)), self.spacing,
                                 self.h, self.connectivity)
        if pieces is None:
            return label, None, np.array([first], np.int64)
        pieces = np.asfortranarray(pieces.transpose(2, 1, 0).astype(np.min_scalar_type(n)))
        np.save(os.path.join(self.folder, f"{label}.npy"), pieces)
        return label, start, first_voxels(pieces, n, start, self.shape)[1]

    def __call__(self, batch):
        return [self._one(*item) for item in batch]


def batches(objects):
    """The kept objects as (label, first voxel, lo, hi) in batches of bounded box volume."""
    batch, voxels = [], 0
    for i, component in enumerate(objects.kept):
        lo, hi = objects.lo[component], objects.hi[component]
        batch.append((i + 1, int(objects.first[component]), lo, hi))
        voxels += int(np.prod(hi - lo + 3))
        if voxels >= BATCH_VOXELS or len(batch) >= BATCH_OBJECTS:
            yield batch
            batch, voxels = [], 0
    if batch:
        yield batch


class SplitLabels:
    """The split objects renumbered, saved under `folder` (so tasks do not carry them):
    lookup.npy (label -> final id, 0 for split objects) and split.npz (per split object: its
    label, box start and the final ids of its pieces, from `offsets`)."""

    def __init__(self, results, count, folder):
        rows = sorted(results, key=lambda r: r[0])
        firsts = np.concatenate([r[2] for r in rows] + [np.zeros(0, np.int64)])
        owner = np.repeat([r[0] for r in rows], [len(r[2]) for r in rows]).astype(np.int64)
        order = np.argsort(firsts, kind="stable")
        final = np.empty(len(firsts), np.int64)
        final[order] = np.arange(1, len(firsts) + 1)
        self.count = len(firsts)
        self.dtype = np.dtype(np.uint32 if self.count < 2**32 else np.uint64)
        whole = np.array([r[1] is None for r in rows], bool)
        lookup = np.zeros(count + 1, self.dtype)
        starts = np.cumsum([0] + [len(r[2]) for r in rows])
        lookup[owner[starts[:-1][whole]]] = final[starts[:-1][whole]]
        self.lookup = os.path.join(folder, "lookup.npy")
        np.save(self.lookup, lookup)
        split = [(r, a, b) for r, a, b in zip(rows, starts[:-1], starts[1:]) if r[1] is not None]
        self.table = os.path.join(folder, "split.npz")
        np.savez(self.table, labels=np.array([r[0] for r, _, _ in split], np.int64),
                 starts=np.array([r[1] for r, _, _ in split], np.int64).reshape(-1, 3),
                 offsets=np.cumsum([0] + [b - a for _, a, b in split]),
                 ids=np.concatenate([final[a:b] for _, a, b in split] + [np.zeros(0, np.int64)]))
        self.folder = folder


class SplitSource:
    """The final labels after splitting as a lazy source (picklable): the objects of `labels`
    mapped through the lookup, the voxels of split objects through their saved pieces."""

    def __init__(self, labels, table):
        self.labels, self.grid = labels, labels.grid
        self.lookup, self.table, self.folder = table.lookup, table.table, table.folder
        self.shape, self.channels, self.dtype = labels.shape, 1, table.dtype

    def read(self, box):
        objects = self.labels.read(box)[..., 0]
        out = np.load(self.lookup, mmap_mode="r")[objects]
        with np.load(self.table) as table:
            split = dict(table)
        present = np.unique(objects)
        for i in np.flatnonzero(np.isin(split["labels"], present)):
            label, start = split["labels"][i], split["starts"][i]
            ids = split["ids"][split["offsets"][i]:split["offsets"][i + 1]].astype(self.dtype)
            pieces = np.load(os.path.join(self.folder, f"{label}.npy"), mmap_mode="r")
            lo = [max(a, s) for a, s in zip(box.start, start)]
            hi = [min(b, s + n) for b, s, n in zip(box.stop, start, pieces.shape)]
            here = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.start))
            there = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
            inside = objects[here] == label
            out[here][inside] = ids[np.asarray(pieces[there])[inside].astype(np.int64) - 1]
        return np.asfortranarray(out[..., None])

    def boxed(self, box):
        """(box, read(box)): for collecting results that arrive out of order."""
        return box, self.read(box)


def split_objects(objects, foreground, shape, voxel_nm, h, connectivity, folder, jobs):
    """The SplitLabels of every kept object, split in parallel over batches of objects."""
    task = SplitTask(foreground, shape, voxel_nm, h, connectivity, folder)
    results = [r for batch in run_tasks(task, list(batches(objects)), jobs=jobs,
                                        desc="splitting objects") for r in batch]
    return SplitLabels(results, objects.count, folder)
