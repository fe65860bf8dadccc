#!/bin/sh
# The threads-and-signals workload: compile with gcc under /tmp, then run.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/signals
gcc -O2 -Wall -Wextra -Werror -pthread -o /tmp/signals/signals "$src/signals.c"
/tmp/signals/signals
