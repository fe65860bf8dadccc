#!/bin/sh
# /proc/self/exe under emulation (tonistiigi/binfmt's test.bats case
# change-workdir-and-read-self-exe, and variants): chwd changes directory
# to /, then prints where /proc/self/exe points and whether its bytes are
# the program's. It must name the program, by absolute path, however it was
# started: relative, absolute, through PATH or a symlink.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
W=/tmp/argv0
mkdir -p "$W/bin"
cd "$W"
echo "machine: $(uname -m)"
gcc -O1 -o chwd "$src/chwd.c"
ln -s ../chwd bin/chwd-link
check() { name=$1; shift; printf '%s: %s\n' "$name" "$("$@" 2>&1)"; }
check relative ./chwd "$W/chwd"
check absolute "$W/chwd" "$W/chwd"
check path env PATH="$W:/usr/bin:/bin" chwd "$W/chwd"
check symlink ./bin/chwd-link "$W/chwd"
