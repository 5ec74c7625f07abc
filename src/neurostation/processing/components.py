"""Connected components of a volume larger than memory, box by box, with global relabelling.

Pass 1 labels each box on its own (cc3d), keeps per local label its voxel count, its first
voxel in x-fastest raster order, whether it touches the volume's border and, when asked (the
watershed split needs them; they cost 3x the labelling), its bounding box,
and saves the box's six boundary planes. The planes of neighbouring boxes (faces, edges and corners, as
the connectivity allows) give the equivalences of local labels; the connected components of
that equivalence graph are the objects. Pass 2 labels each box again (cc3d is deterministic)
and maps its local labels to the final ones: 1..N ordered by each object's first voxel in
x-fastest raster order (cc3d's own numbering of the whole volume in Fortran order). Memory:
a box plus the per-label tables, never the volume.
"""

import os
from itertools import product

import cc3d
import fastremap
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..chunks.boxes import Box, plan_boxes

# Connectivity -> how many coordinates two neighbouring voxels may differ in.
REACH = {6: 1, 18: 2, 26: 3}


class Foreground:
    """Which voxels of one channel of a source are objects: non-zero, or above a threshold."""

    def __init__(self, source, channel=0, threshold=None):
        self.source, self.channel, self.threshold = source, channel, threshold

    def read(self, box):
        """(mask (x, y, z) Fortran-ordered, value range (min, max) of the box — with a
        threshold only, for the message about one outside the data; else NaN)."""
        data = np.asarray(self.source.read(box))[..., self.channel]
        span = (np.nan, np.nan)
        if self.threshold is not None:
            finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
            span = (finite.min(), finite.max()) if finite.size else span
        return self._mask(data), tuple(float(v) for v in span)

    def mask(self, box):
        """The mask (x, y, z) of a box, Fortran-ordered."""
        return self._mask(np.asarray(self.source.read(box))[..., self.channel])

    def _mask(self, data):
        with np.errstate(invalid="ignore"):
            mask = data != 0 if self.threshold is None else data > self.threshold
        return np.asfortranarray(mask)


def local_labels(mask, connectivity):
    """cc3d labels 1..n of one box (x, y, z), Fortran-ordered, and n."""
    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True,
                                          out_dtype=np.uint32)
    return np.asfortranarray(labels), int(n)


def first_voxels(labels, n, start, shape):
    """(voxel count, first voxel as a global x-fastest raster index) of labels 1..n of an
    (x, y, z) box whose first voxel lies at `start` of a volume of `shape`."""
    flat = labels.ravel(order="F")
    where = np.flatnonzero(flat != 0)  # 3x faster than scanning the uint32 labels themselves
    values = flat[where]
    counts = np.bincount(values, minlength=n + 1)[1:].astype(np.int64)
    first = np.full(n + 1, flat.size, np.int64)
    np.minimum.at(first, values, where)
    x, y, z = np.unravel_index(first[1:], labels.shape, order="F")
    sx, sy, _ = shape
    first = (start[0] + x) + sx * ((start[1] + y) + sy * (start[2] + z))
    return counts, first.astype(np.int64)


class Grid:
    """The boxes of size `box` tiling `shape`, indexed in plan order (x fastest)."""

    def __init__(self, shape, box):
        self.shape, self.box = tuple(shape), tuple(min(b, n) for b, n in zip(box, shape))
        self.counts = tuple(-(-n // b) for n, b in zip(self.shape, self.box))
        self.boxes = plan_boxes(self.shape, self.box)

    def index(self, cell):
        return cell[0] + self.counts[0] * (cell[1] + self.counts[1] * cell[2])

    def cell(self, box):
        return tuple(a // b for a, b in zip(box.start, self.box))

    def at(self, cell):
        start = tuple(c * b for c, b in zip(cell, self.box))
        return Box(start, tuple(min(a + b, n) for a, b, n in zip(start, self.box, self.shape)))


class Piece:
    """Pass-1 result of one box: per local label (1..n) voxel count, first voxel (global
    x-fastest raster index), border contact, first and last voxel (x, y, z) of its bounding
    box (None when not asked for); and the box's value range (min, max)."""

    def __init__(self, index, counts, first, border, lo, hi, span):
        self.index, self.counts, self.first, self.border, self.span = (
            index, counts, first, border, span)
        self.lo, self.hi = lo, hi


def _planes(labels):
    """The six boundary planes of a box's labels, kept 3D: {(axis, side): array}."""
    return {(a, s): labels[tuple(slice(-1, None) if i == a and s else slice(0, 1) if i == a
                                 else slice(None) for i in range(3))]
            for a in range(3) for s in (0, 1)}


class FirstPass:
    """Label one box, save its boundary planes under `folder`, return its Piece (picklable);
    with `bounds`, the Piece carries the bounding box of every local label."""

    def __init__(self, foreground, grid, connectivity, folder, bounds=False):
        self.foreground, self.grid, self.connectivity, self.folder = (
            foreground, grid, connectivity, folder)
        self.bounds = bounds

    def __call__(self, box):
        mask, span = self.foreground.read(box)
        labels, n = local_labels(mask, self.connectivity)
        counts, first = first_voxels(labels, n, box.start, self.grid.shape)
        lo = hi = None
        if self.bounds:  # (x min, x max, y min, ...) inclusive, in one C++ pass
            found = cc3d.statistics(labels, no_slice_conversion=True)["bounding_boxes"]
            found = np.asarray(found, np.int64)[1:n + 1].reshape(n, 3, 2)
            lo, hi = found[:, :, 0] + box.start, found[:, :, 1] + box.start
        planes = _planes(labels)
        border = np.zeros(n + 1, bool)
        for (axis, side), plane in planes.items():
            edge = box.stop[axis] == self.grid.shape[axis] if side else box.start[axis] == 0
            if edge and self.grid.shape[axis] > 1:
                border[plane.ravel()] = True
        index = self.grid.index(self.grid.cell(box))
        np.savez(os.path.join(self.folder, f"{index}.npz"),
                 **{f"{a}{s}": p for (a, s), p in planes.items()})
        return Piece(index, counts, first, border[1:], lo, hi, span)


def _neighbour_offsets(reach):
    """Offsets (dx, dy, dz) to the boxes a box shares voxels' neighbours with, each pair once
    (first non-zero component positive), within the connectivity's reach."""
    return [d for d in product((-1, 0, 1), repeat=3)
            if any(d) and next(v for v in d if v) > 0 and sum(map(bool, d)) <= reach]


def _boundary(planes, offset, near):
    """The voxels of a box facing its neighbour at `offset` (`near`: this box is the lower one)."""
    axis = next(i for i, v in enumerate(offset) if v)
    sides = {i: (v > 0) == near for i, v in enumerate(offset) if v}
    plane = planes[f"{axis}{int(sides[axis])}"]
    return plane[tuple(slice(None) if i == axis or i not in sides else
                       slice(-1, None) if sides[i] else slice(0, 1) for i in range(3))]


class Contacts:
    """Pairs of local labels (this box, neighbour) that touch across a box's boundaries."""

    def __init__(self, grid, connectivity, folder):
        self.grid, self.reach, self.folder = grid, REACH[connectivity], folder

    def _load(self, index):
        with np.load(os.path.join(self.folder, f"{index}.npz")) as planes:
            return dict(planes)

    def __call__(self, box):
        cell = self.grid.cell(box)
        index = self.grid.index(cell)
        mine, found = self._load(index), []
        for offset in _neighbour_offsets(self.reach):
            other = tuple(c + d for c, d in zip(cell, offset))
            if not all(0 <= c < n for c, n in zip(other, self.grid.counts)):
                continue
            j = self.grid.index(other)
            a = _boundary(mine, offset, True)
            b = _boundary(self._load(j), offset, False)
            free = [i for i, v in enumerate(offset) if not v]
            pairs = []
            for shift in product((-1, 0, 1), repeat=len(free)):
                if sum(map(bool, offset)) + sum(map(bool, shift)) > self.reach:
                    continue
                sa, sb = [slice(None)] * 3, [slice(None)] * 3
                for axis, s in zip(free, shift):
                    sa[axis] = slice(max(0, -s), a.shape[axis] - max(0, s))
                    sb[axis] = slice(max(0, s), b.shape[axis] - max(0, -s))
                la, lb = a[tuple(sa)].ravel(), b[tuple(sb)].ravel()
                touching = (la != 0) & (lb != 0)
                pairs.append(np.stack([la[touching], lb[touching]], axis=1))
            pairs = np.unique(np.concatenate(pairs), axis=0)
            if len(pairs):
                found.append((index, j, pairs))
        return found


class Objects:
    """The global objects from the pieces and their contacts, filtered and numbered 1..N."""

    def __init__(self, pieces, contacts, min_voxels=0, remove_border=False):
        pieces = sorted(pieces, key=lambda p: p.index)
        sizes = np.array([len(p.counts) for p in pieces], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])[:-1]  # by box index
        total = int(sizes.sum())
        counts = np.concatenate([p.counts for p in pieces] + [np.zeros(0, np.int64)])
        first = np.concatenate([p.first for p in pieces] + [np.zeros(0, np.int64)])
        border = np.concatenate([p.border for p in pieces] + [np.zeros(0, bool)])
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for i, j, pairs in contacts:
            rows.append(self.offsets[i] + pairs[:, 0].astype(np.int64) - 1)
            cols.append(self.offsets[j] + pairs[:, 1].astype(np.int64) - 1)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(total, total))
        n, component = connected_components(graph, directed=False)
        self.found = n
        self.voxels = np.zeros(n, np.int64)
        np.add.at(self.voxels, component, counts)
        self.first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(self.first, component, first)
        self.touches = np.zeros(n, bool)
        np.logical_or.at(self.touches, component, border)
        self.lo = self.hi = None  # bounding boxes, when the pieces carry them
        if pieces and pieces[0].lo is not None:
            self.lo = np.full((n, 3), np.iinfo(np.int64).max)
            np.minimum.at(self.lo, component, np.concatenate([p.lo for p in pieces]))
            self.hi = np.full((n, 3), -1, np.int64)
            np.maximum.at(self.hi, component, np.concatenate([p.hi for p in pieces]))
        keep = self.voxels >= min_voxels
        if remove_border:
            keep &= ~self.touches
        kept = np.flatnonzero(keep)
        kept = kept[np.argsort(self.first[kept], kind="stable")]
        self.kept = kept  # the object of each final label 1..N
        self.count = len(kept)
        self.dtype = np.dtype(np.uint32 if self.count < 2**32 else np.uint64)
        final = np.zeros(n, self.dtype)
        final[kept] = np.arange(1, self.count + 1, dtype=self.dtype)
        self.remap = final[component]  # per piece label, in box order


class LabelSource:
    """The final labels as a lazy source (shape, dtype, channels, read(box)) for writers:
    each box of the grid is labelled again and mapped through the saved table (picklable)."""

    def __init__(self, foreground, grid, connectivity, offsets, table, dtype):
        self.foreground, self.grid, self.connectivity = foreground, grid, connectivity
        self.offsets, self.table, self.dtype = offsets, table, np.dtype(dtype)
        self.shape, self.channels = grid.shape, 1

    def _labelled(self, cell):
        box = self.grid.at(cell)
        labels, n = local_labels(self.foreground.mask(box), self.connectivity)
        remap = np.load(self.table, mmap_mode="r")
        start = self.offsets[self.grid.index(cell)]
        lookup = np.concatenate([np.zeros(1, self.dtype), remap[start:start + n]])
        labels = labels.astype(self.dtype, copy=False)
        fastremap.remap_from_array(labels.ravel(order="F"), lookup, in_place=True)  # 4x numpy's
        return box, labels

    def read(self, box):
        """Final labels of any box (x, y, z, 1); grid-aligned boxes cost one labelling."""
        cells = [range(a // b, (s - 1) // b + 1) for a, s, b in zip(box.start, box.stop, self.grid.box)]
        first = tuple(r[0] for r in cells)
        if self.grid.at(first) == box:  # a box of the grid: no copy
            return self._labelled(first)[1][..., None]
        out = np.zeros(box.shape + (1,), self.dtype, order="F")
        for cell in product(*cells):
            part, labels = self._labelled(cell)
            lo = [max(a, p) for a, p in zip(box.start, part.start)]
            hi = [min(a, p) for a, p in zip(box.stop, part.stop)]
            out[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.start)) + (0,)] = (
                labels[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, part.start))])
        return out

    def boxed(self, box):
        """(box, read(box)): for collecting results that arrive out of order."""
        return box, self.read(box)
