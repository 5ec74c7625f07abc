"""Face contacts between labels, counted box by box: each box is read with one more voxel
at its upper end in x, y and z, and every pair of face neighbours (6-connectivity) whose
first voxel lies in the box is counted there — so each face of the volume is counted exactly
once, across box borders too. Results per box: the label pairs with their face counts per
axis, and the voxel count of every label."""

from dataclasses import dataclass

import numpy as np

from ...chunks.boxes import Box
from .grouping import sum_by_key
from .inputs import read_labels


@dataclass
class Contacts:
    """`pairs` (k, 2) label pairs a < b with `faces` (k, 3) face counts across x, y and z;
    `labels` with their `voxels`."""

    pairs: np.ndarray
    faces: np.ndarray
    labels: np.ndarray
    voxels: np.ndarray

    def __len__(self):
        return len(self.pairs) + len(self.labels)


def face_pairs(data, core):
    """(pairs, faces) of an (x, y, z) array whose first `core` voxels per axis are the box and
    the rest (at most one voxel) its upper neighbours."""
    keys, axes = [], []
    for axis in range(3):
        n = min(core[axis], data.shape[axis] - 1)
        lower = [slice(0, c) for c in core]
        upper = list(lower)
        lower[axis], upper[axis] = slice(0, n), slice(1, n + 1)
        a, b = data[tuple(lower)].ravel(), data[tuple(upper)].ravel()
        touch = (a != b) & (a != 0) & (b != 0)
        a, b = a[touch], b[touch]
        keys.append(np.column_stack([np.minimum(a, b), np.maximum(a, b)]))
        axes.append(np.full(len(a), axis))
    keys, axes = np.concatenate(keys), np.concatenate(axes)
    pairs, _, faces = sum_by_key(keys, np.eye(3)[axes])
    return pairs, faces


def box_contacts(source, box):
    """Contacts of one box of a label volume (read with its upper neighbours)."""
    grown = Box(box.start, tuple(min(b + 1, n) for b, n in zip(box.stop, source.shape)))
    data = read_labels(source, grown)
    pairs, faces = face_pairs(data, box.shape)
    inner = data[:box.shape[0], :box.shape[1], :box.shape[2]]
    labels, voxels = np.unique(inner[inner != 0], return_counts=True)
    return Contacts(pairs, faces, labels, voxels)


def merge_contacts(parts):
    """One Contacts from several, pairs and labels summed."""
    pairs, _, faces = sum_by_key(np.concatenate([p.pairs for p in parts]).reshape(-1, 2),
                                 np.concatenate([p.faces for p in parts]).reshape(-1, 3))
    labels, _, voxels = sum_by_key(np.concatenate([p.labels for p in parts]),
                                   np.concatenate([p.voxels for p in parts])[:, None])
    return Contacts(pairs, faces.astype(np.int64), labels, voxels[:, 0].astype(np.int64))
