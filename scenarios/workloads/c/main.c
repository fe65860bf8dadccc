/* The C workload: a SHA-256 of generated data, a prime count, a sort and
 * some floating point, each printed so that the scenario can check it. The
 * values do not depend on the architecture. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include "sha256.h"
#include "sieve.h"

#define DATA_LEN (4u << 20)
#define SORT_LEN 200000

/* Numerical Recipes' 32-bit linear congruential generator. */
static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

static int compare(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        return 1;
    printf("machine: %s\n", u.machine);

    uint8_t *data = malloc(DATA_LEN);
    uint32_t *numbers = malloc(SORT_LEN * sizeof *numbers);
    if (!data || !numbers)
        return 1;
    uint32_t state = 1;
    for (size_t i = 0; i < DATA_LEN; i++)
        data[i] = (uint8_t)(lcg(&state) >> 24);
    uint8_t digest[32];
    sha256(data, DATA_LEN, digest);
    printf("sha256: ");
    for (int i = 0; i < 32; i++)
        printf("%02x", digest[i]);
    printf("\n");

    printf("primes below 5000000: %ld\n", count_primes(5000000));

    for (size_t i = 0; i < SORT_LEN; i++)
        numbers[i] = lcg(&state);
    qsort(numbers, SORT_LEN, sizeof *numbers, compare);
    uint64_t weighted = 0;
    for (size_t i = 0; i < SORT_LEN; i++)
        weighted += (uint64_t)(i + 1) * numbers[i];
    printf("sorted: min %u max %u weighted %llu\n", numbers[0], numbers[SORT_LEN - 1],
           (unsigned long long)weighted);

    /* The Leibniz series for pi, summed backwards for accuracy. */
    double pi = 0;
    for (long k = 2000000; k >= 0; k--)
        pi += (k % 2 ? -4.0 : 4.0) / (2 * k + 1);
    printf("pi: %.6f sqrt2: %.12f\n", pi, sqrt(2.0));
    free(data);
    free(numbers);
    return 0;
}
