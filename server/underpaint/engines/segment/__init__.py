"""Selecting objects (mode ``segment``): engines that answer a box, clicks, a rough selection or a
phrase with a soft mask. ``classical`` (GrabCut) needs no weights; the learned models (Segment
Anything, CLIPSeg, text + SAM) come through ``transformers`` and are imported only when configured."""
