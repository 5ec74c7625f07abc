"""Synthetic spot volumes with known centres (gaussian spots on a dark background), for the
`blobs` tests and the planemo test data (scripts/make_test_data.py)."""

import numpy as np


def spots_volume(shape_zyx, centres_zyx, sigma, amplitude=20000, noise=0, seed=0,
                 dtype=np.uint16):
    """A (z, y, x) volume: a gaussian of `sigma` voxels (one value, or (z, y, x)) and peak
    `amplitude` at each centre, plus uniform noise below `noise`."""
    grid = np.indices(shape_zyx, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (3,))
    volume = np.zeros(shape_zyx)
    for centre in centres_zyx:
        volume += np.exp(-sum((g - c) ** 2 / (2 * s * s) for g, c, s in zip(grid, centre, sigma)))
    volume = volume * amplitude + np.random.default_rng(seed).uniform(0, noise, shape_zyx)
    return np.clip(volume, 0, np.iinfo(dtype).max).astype(dtype)
