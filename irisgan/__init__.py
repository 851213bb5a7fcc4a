"""irisgan: detect GAN-generated faces from their eyes (Guo et al. 2022, reproduced and extended)."""

__version__ = "0.1.0"
