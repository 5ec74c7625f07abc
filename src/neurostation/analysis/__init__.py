"""Analysis stage: numbers from volumes and series (measurements, graphs, fMRI)."""
