"""Storage stage: describe, write and read chunked multi-resolution volumes."""
