#!/usr/bin/python3
"""foreign.py CMD [ARGS...]: run CMD and report how busy the rest of the machine was.

Prints CMD's standard output unchanged, then a line
    # foreign_cpu_cores X
where X is the CPU time used by everything except CMD and its children
during CMD's run (busy jiffies from /proc/stat minus CMD's own user+system
time), divided by the wall time: 0 on a quiet machine, 1 when another job
kept a whole core busy. The benchmark runners retry measurements whose X
is too high. Exit status is CMD's.
"""

import os
import resource
import subprocess
import sys
import time


def busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: foreign.py CMD [ARGS...]")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0 = busy_seconds(), time.monotonic()
    proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
    b1, t1 = busy_seconds(), time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    sys.stdout.buffer.write(proc.stdout)
    print(f"# foreign_cpu_cores {max(0.0, (b1 - b0 - own) / (t1 - t0)):.3f}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
