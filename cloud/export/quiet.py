"""Keep converter chatter out of the terminal, but keep it for error messages.

TensorFlow, tf2onnx and NNCF print from Python *and* from C++ (straight to file
descriptors 1 and 2), which would bury the exporter's own progress lines. ``captured()``
redirects both descriptors into a temporary file for the duration of one step; when the
step fails, the tail of that log is attached to the error so nothing useful is lost.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator


class CapturedLog:
    """What a step printed; read ``text`` after the ``with`` block ends."""

    text: str = ""

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


def _open_fds() -> list[int]:
    """Descriptors 1 and 2 where they exist (C libraries write there, whatever sys.stdout is)."""
    fds = []
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


@contextlib.contextmanager
def captured() -> Iterator[CapturedLog]:
    """Redirect Python and C-level stdout/stderr into a log for the block's duration."""
    log = CapturedLog()
    fds = _open_fds()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                try:
                    yield log
                finally:
                    log.text = buffer.getvalue()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, old in zip(fds, saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            log.text += sink.read().decode("utf-8", errors="replace")
