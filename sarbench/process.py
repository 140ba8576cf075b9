"""Process-wide settings of a training process: glibc's allocator, and signals held back around a write.

Both act on the whole process, like ``torch.set_num_threads``; the trainer (train.py) uses them.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading


@functools.lru_cache(maxsize=None)
def _libc():
    """glibc, loaded once (find_library runs ldconfig); None where there is no mallopt/malloc_trim."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the system.

    A training step allocates and frees tens of tensors of 10-50 MB (batch x L x L attention, batch
    x L x 4d feed-forward). By default glibc serves the larger ones from fresh pages (mmap) and
    returns them on free, so each allocation pays thousands of page faults: on one thread, 15-17 s
    of system time per ml-1m epoch. Here blocks up to 32 MB (glibc's maximum) come from the heap,
    and freed heap memory is kept (up to 1 GB above the top) for the next batch: 2.6-3.3 s.
    Larger blocks still use mmap, which keeps the heap from fragmenting (with mmap switched off
    entirely, an ml-1m run's resident memory crept from 2 to 6 GB over 20 epochs). ``Trainer``
    applies this on CPU and calls ``release_freed_memory`` after every epoch. Process-wide, like
    ``torch.set_num_threads``. Returns False where it does not apply (not glibc).
    """
    global _MALLOC_TUNED
    if not _MALLOC_TUNED:
        libc = _libc()
        if libc is None:
            return False
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        _MALLOC_TUNED = all(libc.mallopt(option, value) for option, value in
                            ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20)))
    return _MALLOC_TUNED


def release_freed_memory() -> None:
    """Return free heap pages to the system (glibc ``malloc_trim``); a no-op elsewhere."""
    if _MALLOC_TUNED:
        _libc().malloc_trim(0)


_MALLOC_TUNED = False


@contextlib.contextmanager
def signals_deferred(signals=(signal.SIGINT, signal.SIGTERM)):
    """Hold back ``signals`` (delivered when the block ends) in the main thread; elsewhere a no-op.

    A Ctrl-C or a SIGTERM that a caller turned into KeyboardInterrupt (``sarbench run``) would
    otherwise be able to land between writing a checkpoint and renaming it into place: the run would
    be recorded as interrupted after an epoch whose checkpoint does not exist, and could not resume.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
