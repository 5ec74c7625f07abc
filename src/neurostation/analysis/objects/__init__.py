"""Object analysis over label volumes, chunk-wise: per-label measurements and contact graphs."""
