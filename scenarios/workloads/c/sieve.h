/* Counting primes with the sieve of Eratosthenes. */
#ifndef QUS_SIEVE_H
#define QUS_SIEVE_H
#include <stddef.h>

/* The number of primes below `limit`, or -1 when out of memory. */
long count_primes(size_t limit);

#endif
