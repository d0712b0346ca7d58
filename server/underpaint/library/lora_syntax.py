"""A1111's ``<lora:name:weight>`` prompt syntax, which users know: the tags become the job's LoRAs."""

from __future__ import annotations

import re

_TAG = re.compile(r"<lora:([^:>]+)(?::(-?\d+(?:\.\d+)?))?>")


def split_prompt(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """The prompt without its ``<lora:...>`` tags, and the tags as (name, weight); weight 1 when left out."""
    tags = [(match.group(1).strip(), float(match.group(2) or 1.0)) for match in _TAG.finditer(prompt)]
    if not tags:
        return prompt, []
    cleaned = re.sub(r"(\s*,)+\s*(?=,|$)", "", _TAG.sub("", prompt))
    return re.sub(r"\s{2,}", " ", cleaned).strip().strip(",").strip(), tags
