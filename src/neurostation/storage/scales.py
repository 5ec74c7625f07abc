"""Resolution pyramids: which factors each scale uses, and how a block is downsampled.

Images average (tinybrain's averaging), labels take the mode (tinybrain's COUNTLESS), the
choices igneous makes for Neuroglancer. Anisotropic data is halved in x and y only until
its xy resolution reaches z's; then all three axes are halved.
"""

import numpy as np
import tinybrain


def plan_factors(shape, resolution, chunk, max_levels=None):
    """Per-scale downsampling factors (x, y, z) until the volume fits one chunk in x and y."""
    factors, size, res = [], list(shape), list(resolution)
    while size[0] > chunk[0] or size[1] > chunk[1]:
        if max_levels is not None and len(factors) >= max_levels:
            break
        factor = (2, 2, 2 if res[2] <= res[0] * 1.01 and size[2] > 1 else 1)
        factors.append(factor)
        size = [-(-n // f) for n, f in zip(size, factor)]
        res = [r * f for r, f in zip(res, factor)]
    return factors


def downsample(block, factor, layer_type):
    """One scale down of an (x, y, z, c) block: average for images (rounded down), mode for
    labels. Odd edges are padded by repeating the last voxel, which makes the average of a
    partial window the average of the voxels it has (tinybrain mishandles odd sizes)."""
    if all(f == 1 for f in factor):
        return block
    pad = [(0, -n % f) for n, f in zip(block.shape[:3], factor)] + [(0, 0)] * (block.ndim - 3)
    block = np.asfortranarray(np.pad(block, pad, mode="edge") if any(p[1] for p in pad) else block)
    if layer_type == "segmentation":
        return tinybrain.downsample_segmentation(block, factor, num_mips=1, sparse=False)[0]
    out = tinybrain.downsample_with_averaging(block, factor, num_mips=1)[0]
    return out.astype(block.dtype, copy=False)


def cumulative(factors):
    """Total factor from full resolution to each scale (scale 0 first, (1, 1, 1))."""
    total = [(1, 1, 1)]
    for f in factors:
        total.append(tuple(a * b for a, b in zip(total[-1], f)))
    return total


def scale_shape(shape, total_factor):
    return tuple(-(-n // f) for n, f in zip(shape, total_factor))


def box_bytes(box_shape, dtype, channels):
    return int(np.prod(box_shape)) * np.dtype(dtype).itemsize * channels
