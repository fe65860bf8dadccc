#!/bin/sh
# The C++ workload: compile with g++ (C++17, threads) under /tmp, then run.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/cxx
g++ -std=c++17 -O1 -Wall -Wextra -Werror -pthread -o /tmp/cxx/workload "$src/workload.cpp"
/tmp/cxx/workload
