"""Readers and writers for the formats NeuroStation takes in and puts out."""
