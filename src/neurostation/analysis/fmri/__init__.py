"""fMRI analysis: region time series, connectivity, graph measures, decompositions, seed maps."""
