"""Visualize stage: QC pictures of volumes (`neurostation qc`) and the checkerboard that `register` draws."""
