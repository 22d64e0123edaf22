"""The garbage collector of the local stack's Spark driver JVMs: the serial one.

In local mode the driver JVM is also the only executor. On a small machine (this project's reference is 2
cores) G1's concurrent marking and refinement threads and its write barriers compete with the two task
threads, while the job keeps ~0.5 GB of checkpointed rows on a 2 GB heap. With the serial collector the
495-file JHU job used 73-97 s of CPU per run instead of 93-99 s (docs/benchmarks.md). EMR's JVMs are EMR's:
this is local only.

A step that picks a collector in its own options keeps it (a JVM given two refuses to start). Set
COVID19_LAKE_SPARK_GC=jvm to leave the choice to the JVM.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from local.jvm.class_data_sharing import JAVA_OPTIONS_KEY

SERIAL = "-XX:+UseSerialGC"
CHOICE_ENV = "COVID19_LAKE_SPARK_GC"
_PICKS_A_COLLECTOR = re.compile(r"-XX:\+Use\w+GC\b")


def with_collector(settings: Mapping[str, str], step_args: Iterable[str] = ()) -> dict[str, str]:
    """`settings` with the serial collector added to the driver's default Java options, after the others."""
    if os.environ.get(CHOICE_ENV, "").strip().lower() in ("jvm", "default", "off"):
        return dict(settings)
    if any(_PICKS_A_COLLECTOR.search(arg) for arg in step_args):
        return dict(settings)
    options = " ".join(part for part in (settings.get(JAVA_OPTIONS_KEY, ""), SERIAL) if part)
    return {**settings, JAVA_OPTIONS_KEY: options}
