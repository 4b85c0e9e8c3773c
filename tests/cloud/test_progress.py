"""Progress bars: drawn on a real pseudo-terminal, absent (lines only) on anything else."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios
from typing import TextIO

import pytest

from cloud.progress import StepBar, bar


def terminal() -> tuple[int, int]:
    """A pseudo-terminal sized like a real one (rows, columns): (master, slave)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return master, slave


def read_all(fd: int) -> str:
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def steps_on(stream: TextIO) -> None:
    steps = StepBar(3, "export digits v1", file=stream)
    say = steps.say(lambda m: print(m, file=stream))
    say("loading run ...")
    steps.advance(1, "convert")
    say("[1/1] convert litert-fp32 ...")
    steps.advance(2, "signing")
    steps.close()


def test_without_a_terminal_only_the_lines_are_printed() -> None:
    stream = io.StringIO()
    steps_on(stream)
    assert stream.getvalue() == "loading run ...\n[1/1] convert litert-fp32 ...\n"
    plain = io.StringIO()
    with bar(100, "upload x.ekb", plain, unit="B") as b:
        b.update(60)
    assert plain.getvalue() == ""


def test_on_a_terminal_the_bar_is_drawn_with_the_lines_above_it() -> None:
    master, slave = terminal()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert tty.isatty()
            steps_on(tty)
            tty.flush()
        drawn = read_all(master)
    finally:
        os.close(slave)
        os.close(master)
    assert "export digits v1" in drawn
    assert "0/3" in drawn and "step/s" in drawn
    assert "\r" in drawn  # redrawn in place, not printed line by line
    assert "loading run ..." in drawn and "[1/1] convert litert-fp32 ..." in drawn


def test_a_byte_bar_on_a_terminal_counts_bytes() -> None:
    master, slave = terminal()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            with bar(2048, "upload x.ekb", tty, unit="B", unit_scale=True) as b:
                b.update(1024)
                b.refresh()
                b.update(1024)
            tty.flush()
        drawn = read_all(master)
    finally:
        os.close(slave)
        os.close(master)
    assert "upload x.ekb" in drawn and "100%" in drawn


@pytest.mark.parametrize("total", [0, 1])
def test_small_totals_do_not_break(total: int) -> None:
    stream = io.StringIO()
    steps = StepBar(total, "nothing", file=stream)
    steps.advance(1)
    steps.close()
    assert stream.getvalue() == ""
