"""Append blocks of lines: newline-terminated, in order, never over the limit unless one line is."""

from __future__ import annotations

from shared.storage.client import MAX_APPEND_BLOCK_BYTES, line_blocks


def test_lines_are_grouped_in_order_under_the_limit() -> None:
    lines = [f"line-{i}-" + "x" * (i % 7) for i in range(200)]
    blocks = list(line_blocks(lines, limit=64))
    assert b"".join(blocks) == "".join(line + "\n" for line in lines).encode()
    assert all(len(block) <= 64 for block in blocks)
    assert all(block.endswith(b"\n") for block in blocks)
    assert len(blocks) > 1


def test_a_line_over_the_limit_is_a_block_of_its_own() -> None:
    assert list(line_blocks(["ab", "x" * 10, "cd"], limit=5)) == [
        b"ab\n",
        b"x" * 10 + b"\n",
        b"cd\n",
    ]


def test_no_lines_no_blocks_and_the_default_is_the_service_limit() -> None:
    assert list(line_blocks([])) == []
    assert list(line_blocks(["é"])) == ["é\n".encode()]
    assert MAX_APPEND_BLOCK_BYTES == 4 * 1024 * 1024
