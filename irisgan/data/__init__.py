"""Datasets, DataModules, on-disk formats and synthetic data generators."""
