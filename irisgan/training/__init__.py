"""What training needs beyond the networks: the LightningModules (classifier, segmenter), losses, metrics,
callbacks, optimizer and schedule, and COCO evaluation."""
