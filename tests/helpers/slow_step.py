"""A clean step that sleeps per record, so a test can kill a build in the middle of a stage."""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Mapper


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds_per_record: float = 0.001


@register("slow_passthrough")
class SlowPassthrough(Mapper):
    Params: ClassVar[type[BaseModel]] = SlowParams

    def transform(self, record: Record) -> Record:
        time.sleep(self.params.seconds_per_record)  # type: ignore[attr-defined]
        return record
