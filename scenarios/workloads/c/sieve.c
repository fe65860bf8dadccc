/* The sieve of Eratosthenes over odd numbers only. */
#include <stdlib.h>
#include <string.h>
#include "sieve.h"

long count_primes(size_t limit)
{
    if (limit <= 2)
        return 0;
    size_t n = limit / 2; /* index i stands for 2i + 1 */
    unsigned char *composite = calloc(n, 1);
    if (!composite)
        return -1;
    for (size_t i = 1; (2 * i + 1) * (2 * i + 1) < limit; i++)
        if (!composite[i])
            for (size_t j = (2 * i + 1) * (2 * i + 1) / 2; j < n; j += 2 * i + 1)
                composite[j] = 1;
    long count = 1; /* 2 */
    for (size_t i = 1; i < n; i++)
        count += !composite[i];
    free(composite);
    return count;
}
