"""A thin trainer over transformers' Trainer: a release goes in, an evaluated model comes out."""

from training.run import ablate, train

__all__ = ["ablate", "train"]
