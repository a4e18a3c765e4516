"""A thin trainer over transformers' Trainer: a release goes in, an evaluated model comes out."""

from training.run import ablate, ablate_init, ablate_tasks, train

__all__ = ["ablate", "ablate_init", "ablate_tasks", "train"]
