/* qusdemo-fib: prints F(90), computed by libqusdemo.so.1. The library lives
 * in a directory of its own that only /etc/ld.so.conf.d names (as
 * fakeroot's does), so the dynamic loader finds it only once ldconfig has
 * rebuilt /etc/ld.so.cache: no rpath, no LD_LIBRARY_PATH. */
#include <stdio.h>
#include "qusdemo.h"

int main(void)
{
    printf("F(90) = %llu\n", qusdemo_fib(90));
    return 0;
}
