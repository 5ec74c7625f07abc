"""Scale-space blob candidates of one box, as scikit-image's blob_log / blob_dog find them on
the whole image (skimage 0.26): the same sigma list, the same normalised LoG (or DoG) stack in
the same float type, and the same local maxima (3 x ... x 3 over space and scale, 'nearest' at
the volume's border, above the absolute threshold). The box is read with the halo of the
largest gaussian plus one voxel, so every maximum whose centre lies in the box is found exactly
once, by this box. Overlap pruning is global (blobs.py)."""

import numpy as np
from scipy import ndimage

from ..chunks.boxes import plan_boxes
from ..chunks.halo import read_with_halo, sigma_halo


class ScaleSpace:
    """The sigma list and stack of blob_log (method 'log') or blob_dog ('dog'). Sigmas are
    arrays per image axis in skimage's order ((z,) y, x), in the float type of the image."""

    def __init__(self, method, min_sigma, max_sigma, num_sigma, sigma_ratio, log_scale, dtype):
        self.method = method
        self.float = np.float32 if np.dtype(dtype) in (np.float16, np.float32) else np.float64
        low, high = (np.asarray(s, self.float) for s in (min_sigma, max_sigma))
        if method == "log":
            self.sigmas = (np.logspace(np.log10(low), np.log10(high), num_sigma) if log_scale
                           else np.linspace(low, high, num_sigma))
            self.gaussians = self.sigmas
        else:
            k = int(np.mean(np.log(high / low) / np.log(sigma_ratio) + 1))
            self.gaussians = np.array([low * (sigma_ratio ** i) for i in range(k + 1)])
            self.sigmas = self.gaussians[:-1]
            self.ratio = sigma_ratio

    def halo(self):
        """The reach (per image axis) of the largest gaussian, plus one voxel for the maxima."""
        return tuple(h + 1 for h in sigma_halo(self.gaussians[-1]))

    def stack(self, image):
        """The (..., scale) stack of a float image, as skimage builds it."""
        from skimage.filters import gaussian

        cube = np.empty(image.shape + (len(self.sigmas),), self.float)
        if self.method == "log":
            for i, s in enumerate(self.sigmas):
                cube[..., i] = -ndimage.gaussian_laplace(image, s) * np.mean(s) ** 2
            return cube
        previous = gaussian(image, sigma=self.gaussians[0], mode="reflect")
        for i, s in enumerate(self.gaussians[1:]):
            current = gaussian(image, sigma=s, mode="reflect")
            cube[..., i] = previous - current
            previous = current
        cube *= 1 / (self.ratio - 1)
        return cube


class BoxCandidates:
    """Picklable task: the local maxima of the scale space above `threshold` whose centres lie
    in a box -> (positions (n, 3) x, y, z voxels, scale indices, responses, image values)."""

    def __init__(self, source, channel, space, threshold):
        self.source, self.channel, self.space, self.threshold = source, channel, space, threshold
        self.ndim = 2 if source.shape[2] == 1 else 3  # a 2D image: skimage sees (y, x)

    def _image_axes(self, xyz):
        """x, y, z values -> the image's axes ((z,) y, x) as an array."""
        return np.array(xyz[::-1][-self.ndim:])

    def __call__(self, box):
        from skimage.util import img_as_float

        halo = np.array(self.space.halo())
        raw = read_with_halo(self.source, box, tuple(halo[::-1]) + (0,) * (3 - self.ndim),
                             "reflect")[..., self.channel].T  # (z, y, x) with the halo
        raw = raw.reshape(raw.shape[-self.ndim:])
        cube = self.space.stack(img_as_float(raw).astype(self.space.float, copy=False))
        start, stop = self._image_axes(box.start), self._image_axes(box.stop)
        # maxima over the box grown by one voxel, clipped to the volume ('nearest' beyond it)
        lo = np.maximum(start - 1, 0)
        hi = np.minimum(stop + 1, self._image_axes(self.source.shape))
        near = cube[tuple(slice(a, b) for a, b in zip(lo - start + halo, hi - start + halo))]
        peaks = near == ndimage.maximum_filter(near, footprint=np.ones((3,) * (self.ndim + 1)),
                                               mode="nearest")
        peaks &= near > self.threshold
        inner = tuple(slice(a, b) for a, b in zip(start - lo, stop - lo))
        found = np.nonzero(peaks[inner])
        responses = near[inner][found]
        position = np.array(found[:self.ndim]).T.reshape(-1, self.ndim) + start
        values = raw[tuple((position - start + halo).T)].astype(np.float64)
        xyz = np.zeros((len(position), 3), np.int64)
        xyz[:, :self.ndim] = position[:, ::-1]
        return xyz, found[self.ndim], responses, values


def candidate_boxes(shape, halo_xyz, scales, budget):
    """Boxes (x, y, z) tiling the volume whose scale-space stacks with their halo fit in
    `budget` bytes (float64 values): edges of 128 at most, the largest halved down to 8."""
    size = [min(128, n) for n in shape]

    def stack_bytes():
        return np.prod([s + 2 * h for s, h in zip(size, halo_xyz)]) * scales * 8

    while stack_bytes() > budget and max(size) > 8:
        axis = int(np.argmax(size))
        size[axis] = max(8, size[axis] // 2)
    return plan_boxes(shape, tuple(size))
