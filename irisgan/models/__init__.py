"""Plain nn.Modules: the Residual Attention Network (ran.py) and the Mask R-CNN builder (maskrcnn.py)."""
