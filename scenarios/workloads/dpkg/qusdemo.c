/* libqusdemo: the shared library the dpkg workloads package. */
#include "qusdemo.h"

unsigned long long qusdemo_fib(unsigned n)
{
    unsigned long long a = 0, b = 1;
    while (n--) {
        unsigned long long t = a + b;
        a = b;
        b = t;
    }
    return a;
}
