"""Voxel sizes and their units: parsing `X,Y,Z` options and converting between units."""

from .errors import UserError

# Length units we accept, in nanometres. "um" is the ASCII spelling of micrometre.
UNIT_NM = {"nm": 1.0, "um": 1e3, "mm": 1e6}
_ALIASES = {"µm": "um", "μm": "um", "micron": "um", "micrometer": "um", "micrometre": "um",
            "nanometer": "nm", "nanometre": "nm", "millimeter": "mm", "millimetre": "mm"}


def normalize_unit(unit):
    """Return the canonical spelling (nm, um, mm) of a length unit, or raise UserError."""
    key = _ALIASES.get(unit, unit)
    if key not in UNIT_NM:
        raise UserError(f"unknown voxel unit {unit!r}: use one of nm, um, mm")
    return key


def convert(values, unit_from, unit_to):
    """Convert lengths between units (nm, um, mm)."""
    factor = UNIT_NM[normalize_unit(unit_from)] / UNIT_NM[normalize_unit(unit_to)]
    return tuple(float(v) * factor for v in values)


def parse_xyz(text, what="--voxel-size", positive=True):
    """Parse `X,Y,Z` into three floats, with a clear error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{what} must be three numbers X,Y,Z (e.g. 4,4,40), got {text!r}")
    if positive and not all(v > 0 for v in values):
        raise UserError(f"{what} values must be positive, got {text!r}")
    return values
