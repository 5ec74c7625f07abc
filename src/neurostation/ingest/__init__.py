"""Ingest stage: turn microscope and scanner files into volumes."""
