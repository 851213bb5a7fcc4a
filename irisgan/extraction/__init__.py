"""Face photos to iris pairs: inputs, dlib landmarks, iris location and quality, the extraction run, its manifest
and pictures, and the segmenter's inference API (``python -m irisgan.extract`` and ``predict`` use these)."""
