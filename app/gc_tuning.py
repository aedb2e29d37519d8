"""CPython's garbage collector tuned for a long-running process that imports a lot.

After start-up the worker holds over a hundred thousand objects (127,490) that live as
long as it does (Faust, aiokafka, River, NumPy and SciPy modules, the
detectors' tables), and CPython's full collections walk every one of them
again, while each event allocates and drops thousands of short-lived ones.
:func:`tune` moves what exists after start-up into the permanent generation
(``gc.freeze``: still alive, no longer walked) and collects the young
generation every :data:`YOUNG_EVERY` allocations instead of CPython's 700,
so that most of an event's objects are gone before a collection looks at
them. Reference counting frees everything that is not in a cycle either way;
a frozen object that later becomes garbage in a cycle is never freed, which
bounds what could stay behind by what start-up made, once.

Measured in docs/performance.md ("Session 12").
"""

from __future__ import annotations

import gc

#: Net allocations of container objects between two collections of the young generation.
YOUNG_EVERY = 20_000
#: Young collections between two of the middle generation, and middle between two full ones.
OLDER_EVERY = 20


def tune() -> int:
    """Freeze every object alive now, and collect less often (call once, after the imports).

    Returns the number of objects frozen.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_EVERY, OLDER_EVERY, OLDER_EVERY)
    return gc.get_freeze_count()
