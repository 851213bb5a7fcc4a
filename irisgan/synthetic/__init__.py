"""Synthetic data generators: rendered iris pairs (the RAN's embedded default) and periocular eye images with
class masks (the segmenter's), each cached on disk in the format its loader reads."""
