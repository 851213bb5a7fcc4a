"""Models without training code: the Residual Attention Network (ran.py), the Mask R-CNN builder (maskrcnn.py)
and the training-free corneal-highlight baseline scorer (baseline.py)."""
