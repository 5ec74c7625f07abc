"""Visualize stage: Neuroglancer views of volumes (viewer links, a local viewer) and QC pictures
(`neurostation qc`, whose checkerboard `register` draws too)."""
