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
        # each sigma's own halo (its features are computed on the box grown by that only)
        self.halos = [tuple(h + reach if i in self.axes else 0 for i, h in enumerate(sigma_halo(s)))
                      for s in self.sigmas]
        self.halo = tuple(int(h) for h in np.max(self.halos + [(0, 0, 0)], axis=0))

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
        for sigma, halo in zip(self.sigmas, self.halos):
            yield from self._at_sigma(crop_halo(a, np.subtract(self.halo, halo)), sigma, halo)

    def _derivative(self, a, sigma, order, halo):
        scale = np.prod([self.spacing[i] ** n for i, n in enumerate(order)])
        out = crop_halo(ndimage.gaussian_filter(a, sigma, order=order, mode=self.border), halo)
        return out / scale if scale != 1 else out

    def _at_sigma(self, a, sigma, halo):
        """The features at one sigma of `a`, read with that sigma's `halo`."""
        kinds, axes = self.kinds, self.axes
        if "gaussian" in kinds:
            yield self._derivative(a, sigma, (0, 0, 0), halo)
        if "log" in kinds or "hessian" in kinds:
            second = {(i, j): self._derivative(a, sigma, _order(i, j), halo)
                      for i in axes for j in axes if i <= j}
            if "log" in kinds:
                yield sum(second[(i, i)] for i in axes)
        if "gradient" in kinds:
            yield np.sqrt(sum(self._derivative(a, sigma, _order(i), halo) ** 2 for i in axes))
        if "hessian" in kinds:
            yield from _eigenvalues(second, axes)
        if "structure" in kinds:
            yield from _eigenvalues(self._structure_tensor(a, sigma, halo), axes)

    def _structure_tensor(self, a, sigma, halo):
        """Products of sobel derivatives smoothed by the gaussian (skimage structure_tensor)."""
        grads = {i: self._sobel(a, i) for i in self.axes}
        return {(i, j): crop_halo(ndimage.gaussian_filter(grads[i] * grads[j], sigma,
                                                          mode=self.border), halo)
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
    """Eigenvalues, largest first, of the symmetric 2 x 2 or 3 x 3 matrices given by their
    upper elements: closed forms (numpy's eigvalsh per voxel is ten times slower)."""
    e = {(a, b): elements[(i, j)] for a, i in enumerate(axes) for b, j in enumerate(axes)
         if i <= j}
    if len(axes) == 2:
        mean, half = (e[0, 0] + e[1, 1]) / 2, (e[0, 0] - e[1, 1]) / 2
        root = np.sqrt(half * half + e[0, 1] ** 2)
        yield mean + root
        yield mean - root
        return
    # the trigonometric solution of the characteristic cubic (Smith 1961)
    q = (e[0, 0] + e[1, 1] + e[2, 2]) / 3
    off = e[0, 1] ** 2 + e[0, 2] ** 2 + e[1, 2] ** 2
    d0, d1, d2 = e[0, 0] - q, e[1, 1] - q, e[2, 2] - q
    p = np.sqrt((d0 * d0 + d1 * d1 + d2 * d2 + 2 * off) / 6)
    safe = np.where(p > 0, p, 1)
    det = (d0 * (d1 * d2 - e[1, 2] ** 2) - e[0, 1] * (e[0, 1] * d2 - e[1, 2] * e[0, 2])
           + e[0, 2] * (e[0, 1] * e[1, 2] - d1 * e[0, 2])) / safe ** 3
    phi = np.arccos(np.clip(det / 2, -1, 1)) / 3
    largest = q + 2 * p * np.cos(phi)
    smallest = q + 2 * p * np.cos(phi + 2 * np.pi / 3)
    yield largest
    yield 3 * q - largest - smallest
    yield smallest


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
