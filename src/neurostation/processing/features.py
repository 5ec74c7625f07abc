"""Multi-scale voxel features for pixel classification, computed box by box with a halo so
that the features of a box equal those of the whole volume in memory.

Per channel: the intensity, then per sigma (x, y, z voxels) the kinds asked for:
  gaussian   gaussian smoothing (scipy gaussian_filter)
  log        laplacian of gaussian: the trace of the hessian below
  gradient   gradient magnitude from gaussian first derivatives
  hessian    eigenvalues (decreasing) of the gaussian second-derivative matrix
  structure  eigenvalues (decreasing) of the structure tensor as scikit-image defines it:
             sobel derivatives, their products smoothed by the gaussian
Derivatives are per unit of the smallest voxel edge, so anisotropic voxels give rotation-true
eigenvalues when the sigmas are physical. With `planar` (2D) everything stays in xy planes.
"""

import numpy as np
from scipy import ndimage

from ..chunks.boxes import Box, plan_boxes
from ..chunks.halo import crop_halo, read_with_halo, sigma_halo

KINDS = ("gaussian", "log", "gradient", "hessian", "structure")
# Bytes of float32 features held per box; the box's float64 temporaries are a few times that.
FEATURE_BUDGET = 32 << 20


class FeatureSet:
    """The features of a volume for given kinds, sigmas (x, y, z voxels each), voxel spacing
    (relative edge lengths), planar flag, border mode and channel count; picklable."""

    def __init__(self, kinds, sigmas, spacing, planar, border, channels):
        self.kinds = tuple(k for k in KINDS if k in kinds)
        self.sigmas = [tuple(float(v) for v in s) for s in sigmas]
        self.spacing = tuple(float(v) for v in spacing)
        self.planar, self.border, self.channels = bool(planar), border, int(channels)
        self.axes = (0, 1) if self.planar else (0, 1, 2)
        reach = 1 if "structure" in self.kinds else 0  # the sobel step before the smoothing
        halo = np.zeros(3, int)
        for s in self.sigmas:
            halo = np.maximum(halo, np.array(sigma_halo(s)) + reach)
        if self.planar:
            halo[2] = 0
        self.halo = tuple(int(h) for h in halo)

    @property
    def names(self):
        dims = len(self.axes)
        per_sigma = {"gaussian": ["gaussian"], "log": ["log"], "gradient": ["gradient"],
                     "hessian": [f"hessian_{i}" for i in range(1, dims + 1)],
                     "structure": [f"structure_{i}" for i in range(1, dims + 1)]}
        names = []
        for c in range(self.channels):
            names.append(f"c{c}_intensity")
            for s in self.sigmas:
                label = "x".join(f"{v:g}" for v in (s[:2] if self.planar else s))
                names += [f"c{c}_{n}_s{label}" for k in self.kinds for n in per_sigma[k]]
        return names

    def box_voxels(self):
        """Voxels of a box whose features fit FEATURE_BUDGET."""
        return max(1, FEATURE_BUDGET // (4 * len(self.names)))

    def of_padded(self, padded):
        """Features (x, y, z, n) float32 of an (x, y, z, c) array read with self.halo."""
        shape = crop_halo(padded[..., 0], self.halo).shape
        out = np.empty(shape + (len(self.names),), np.float32)
        i = 0
        for c in range(padded.shape[3]):
            for feature in self._channel(padded[..., c].astype(np.float64)):
                out[..., i] = feature
                i += 1
        return out

    def of_box(self, source, box):
        """Features of `box` of `source`, read with the halo (real neighbours inside the volume,
        the border mode outside)."""
        return self.of_padded(read_with_halo(source, box, self.halo, self.border))

    def _channel(self, a):
        """The cropped features of one padded channel, in the order of self.names."""
        yield crop_halo(a, self.halo)
        for sigma in self.sigmas:
            yield from self._at_sigma(a, sigma)

    def _derivative(self, a, sigma, order):
        scale = np.prod([self.spacing[i] ** n for i, n in enumerate(order)])
        out = ndimage.gaussian_filter(a, sigma, order=order, mode=self.border)
        return crop_halo(out, self.halo) / scale if scale != 1 else crop_halo(out, self.halo)

    def _at_sigma(self, a, sigma):
        kinds, axes = self.kinds, self.axes
        if "gaussian" in kinds:
            yield self._derivative(a, sigma, (0, 0, 0))
        if "log" in kinds or "hessian" in kinds:
            second = {(i, j): self._derivative(a, sigma, _order(i, j))
                      for i in axes for j in axes if i <= j}
            if "log" in kinds:
                yield sum(second[(i, i)] for i in axes)
        if "gradient" in kinds:
            yield np.sqrt(sum(self._derivative(a, sigma, _order(i)) ** 2 for i in axes))
        if "hessian" in kinds:
            yield from _eigenvalues(second, axes)
        if "structure" in kinds:
            yield from _eigenvalues(self._structure_tensor(a, sigma), axes)

    def _structure_tensor(self, a, sigma):
        """Products of sobel derivatives smoothed by the gaussian (skimage structure_tensor)."""
        grads = {i: self._sobel(a, i) for i in self.axes}
        return {(i, j): crop_halo(ndimage.gaussian_filter(grads[i] * grads[j], sigma,
                                                          mode=self.border), self.halo)
                for i in self.axes for j in self.axes if i <= j}

    def _sobel(self, a, axis):
        """scipy's sobel along `axis` restricted to the active axes, per voxel edge length."""
        out = ndimage.correlate1d(a, [-1.0, 0.0, 1.0], axis, mode=self.border)
        for other in self.axes:
            if other != axis:
                out = ndimage.correlate1d(out, [1.0, 2.0, 1.0], other, mode=self.border)
        return out / self.spacing[axis]


def _order(*axes):
    order = [0, 0, 0]
    for i in axes:
        order[i] += 1
    return tuple(order)


def _eigenvalues(elements, axes):
    """Eigenvalues, largest first, of the symmetric matrices given by their upper elements."""
    dims = len(axes)
    shape = elements[(axes[0], axes[0])].shape
    matrix = np.empty(shape + (dims, dims))
    for a, i in enumerate(axes):
        for b, j in enumerate(axes):
            matrix[..., a, b] = elements[(min(i, j), max(i, j))]
    values = np.linalg.eigvalsh(matrix)
    for k in range(dims - 1, -1, -1):
        yield values[..., k]


def sub_boxes(features, box):
    """Boxes inside `box` (absolute coordinates) whose features fit the budget, as near cubes
    (square in 2D) as the box allows, so that the halo adds little reading."""
    size = list(box.shape)
    splittable = [0, 1] if features.planar else [0, 1, 2]
    while np.prod(size) > features.box_voxels():
        axis = max(splittable, key=lambda i: size[i])
        if size[axis] == 1:
            break
        size[axis] = -(-size[axis] // 2)
    return [Box(tuple(a + s for a, s in zip(box.start, b.start)),
                tuple(a + s for a, s in zip(box.start, b.stop)))
            for b in plan_boxes(box.shape, size)]
