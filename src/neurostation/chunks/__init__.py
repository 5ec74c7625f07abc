"""The chunk engine: plan chunk-aligned boxes, run a pure task per box in a process pool,
skip boxes a previous run already wrote. Memory is bounded by the box, never the volume."""
