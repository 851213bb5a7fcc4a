"""Datasets, DataModules and on-disk formats: iris pairs (and their augmentation and degradations), face
folders, UBIPR eye images; the synthetic generators they can draw from live in ``irisgan.synthetic``."""
