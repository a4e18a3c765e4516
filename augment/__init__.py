"""Augmenters: new training records derived from the train split, each linked to its parent."""

from augment.backtranslation import BackTranslate
from augment.eda import EasyDataAugmenter

__all__ = ["BackTranslate", "EasyDataAugmenter"]
