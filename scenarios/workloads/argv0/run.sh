#!/bin/sh
# The argv[0] and shebang cases of tonistiigi/binfmt's test/test.bats (and
# its argv0_test.go), with C programs compiled here instead of Go ones. Each
# line is `<case>: <what the last program printed>`. Programs are
# in W=/tmp/argv0; shebang scripts name them by absolute path. The bats
# case change-workdir-and-read-self-exe is proc-self-exe.sh's.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
W=/tmp/argv0
mkdir -p "$W/bin"
cd "$W"
echo "machine: $(uname -m)"
for tool in printargs execargv0 reexec; do
    gcc -O1 -o "$tool" "$src/$tool.c" &
done
wait
for tool in printargs execargv0 reexec; do test -x "$tool"; done
cp printargs bin/test-printargs
printf '#!./printargs\n' > shebang.sh
printf '#!./printargs arg\n' > shebang2.sh
printf '#!%s/printargs\n' "$W" > shebang3.sh
printf '#!%s/shebang3.sh\n' "$W" > shebang4.sh
printf '#!/usr/bin/env ./printargs\n' > shebang-path.sh
printf '#!/usr/bin/env sh\n./printargs "$@"\n' > shebang-path2.sh
chmod 0755 ./*.sh
PATH=$W/bin:$PATH
export PATH

check() { name=$1; shift; printf '%s: %s\n' "$name" "$("$@" 2>&1)"; }
check exec-single ./execargv0 ./printargs foo bar1 bar2
check exec-multi ./execargv0 ./execargv0 ./printargs ./printargs baz
check exec-multi-abs ./execargv0 ./execargv0 "$W/printargs" "$W/printargs" baz
check exec-multi-path ./execargv0 test-printargs test-printargs abc
check exec-direct test-printargs foo bar1
check exec-direct-abs "$W/printargs" foo bar1
check shebang ./execargv0 ./shebang.sh arg1 arg2
check shebang-arg ./execargv0 ./shebang2.sh arg1 arg2
check shebang-abs ./execargv0 ./shebang3.sh arg1 arg2
check shebang-multi ./execargv0 ./shebang4.sh arg1 arg2
check shebang-direct ./shebang.sh foo bar1
check relative-exec ./execargv0 env env ./printargs foo bar1 bar2
check path-based-exec env PATH="$PATH:$W" ./execargv0 env env printargs foo bar1 bar2
check shebang-path ./execargv0 ./shebang-path.sh ./shebang-path.sh foo bar1
check shebang-path-shell ./execargv0 ./shebang-path2.sh ./shebang-path2.sh foo bar1
check shell-command-relative sh -c './shebang-path.sh foo bar1 bar2'
check shell-command-relative-nested ./execargv0 sh sh -c './shebang-path2.sh foo bar1 bar2'
check reexec-proc-self-exe ./reexec
