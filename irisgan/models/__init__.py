"""Models without training code: the Residual Attention Network (ran.py), the local-patch net (patch.py), the face
descriptor probe and its fusion with the iris score (face_cue.py), the Mask R-CNN builder (maskrcnn.py)
and the training-free corneal-highlight baseline scorer (baseline.py)."""
