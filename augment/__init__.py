"""Augmenters: new training records derived from the train split, each linked to its parent."""
