"""Intensity registration with dipy: centre of mass -> translation -> rigid -> affine (mutual
information, coarse to fine), then optionally SyN (symmetric diffeomorphic, cross-correlation).

Transforms follow dipy's convention: they map points of the template (static) world, in mm,
to points of the moving image's world.
"""

import sys

import numpy as np
from dipy.align.imaffine import (AffineMap, AffineRegistration, MutualInformationMetric,
                                 transform_centers_of_mass)
from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
from dipy.align.metrics import CCMetric
from dipy.align.transforms import AffineTransform3D, RigidTransform3D, TranslationTransform3D

STAGES = (("translation", TranslationTransform3D), ("rigid", RigidTransform3D),
          ("affine", AffineTransform3D))


def pyramid(iterations):
    """dipy's level settings for `iterations` per level (coarse first): shrink factors
    ..., 4, 2, 1 and smoothing sigmas factor - 1 (3, 1, 0 voxels for three levels)."""
    factors = [2 ** i for i in reversed(range(len(iterations)))]
    return list(iterations), [max(f - 1, 0) for f in factors], factors


def register_affine(static, static_affine, moving, moving_affine, iterations, init="com",
                    bins=32, log=sys.stderr):
    """The 4x4 matrix taking template world points to moving world points, found stage by
    stage (each starts from the previous one)."""
    if init == "com":
        current = transform_centers_of_mass(static, static_affine, moving, moving_affine).affine
    else:
        current = np.eye(4)
    levels, sigmas, factors = pyramid(iterations)
    reg = AffineRegistration(metric=MutualInformationMetric(nbins=bins), level_iters=levels,
                             sigmas=sigmas, factors=factors, verbosity=0)
    for number, (name, kind) in enumerate(STAGES, 1):
        found = reg.optimize(static, moving, kind(), None, static_grid2world=static_affine,
                             moving_grid2world=moving_affine, starting_affine=current)
        current = found.affine
        print(f"progress: {100 * number // (len(STAGES) + 1)}% {name} registration done",
              file=log, flush=True)
    return current


def affine_map(matrix, static, static_affine, moving, moving_affine):
    """dipy's AffineMap between the two grids for `matrix`."""
    return AffineMap(matrix, domain_grid_shape=static.shape, domain_grid2world=static_affine,
                     codomain_grid_shape=moving.shape, codomain_grid2world=moving_affine)


def register_syn(static, static_affine, moving, moving_affine, prealign, iterations):
    """SyN after the affine `prealign`: dipy's DiffeomorphicMap (forward and backward
    displacement fields in mm on the template grid)."""
    sdr = SymmetricDiffeomorphicRegistration(CCMetric(3), level_iters=list(iterations))
    sdr.verbosity = 0
    return sdr.optimize(static, moving, static_grid2world=static_affine,
                        moving_grid2world=moving_affine, prealign=prealign)
