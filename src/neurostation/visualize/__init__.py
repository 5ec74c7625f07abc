"""Visualize stage: Neuroglancer views of volumes (viewer links, a local viewer)."""
