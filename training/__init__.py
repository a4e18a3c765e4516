"""A thin trainer over transformers' Trainer: a release goes in, an evaluated model comes out."""
