"""Face photos to iris pairs: inputs, dlib landmarks, iris location and quality, the extraction loop, its
manifest and pictures (``python -m irisgan.extract`` and ``predict`` use these)."""
