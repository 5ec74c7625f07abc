"""Processing stage: volumes in, volumes out (registration, filters, segmentation)."""
