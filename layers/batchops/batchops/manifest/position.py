"""Where a manifest row starts, so that preparing can stop after any chunk and resume there.

A position is ``(file, offset, row, line)``:

- ``file``: the data file's index in an inventory's manifest.json (0 for a CSV manifest);
- ``offset``: where the row starts: bytes into the CSV manifest object (resumed with a ranged
  GET), bytes into the *decompressed* text of a gzip CSV data file (gzip cannot seek, so the
  file is read again from its first byte and the text before the offset skipped, which also
  lets its MD5 be checked whole), or rows into an ORC or Parquet data file;
- ``row``, ``line``: the rows and lines of that file before it, so that a message about a bad
  row names the same row however the manifest was split up.

Positions are plain tuples, not a class: one is made for every row, and a class costs several
times as much to build.
"""

from __future__ import annotations

Position = tuple[int, int, int, int]
START: Position = (0, 0, 0, 0)


def encode_position(position: Position) -> str:
    return ":".join(str(n) for n in position)


def decode_position(text: str) -> Position:
    """The position ``encode_position`` wrote; ValueError for anything else."""
    parts = text.split(":")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"not a manifest position: {text!r}")
    file, offset, row, line = (int(p) for p in parts)
    return file, offset, row, line
