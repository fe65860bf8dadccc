/* SHA-256 (FIPS 180-4) of a buffer, written byte-order independent: the
 * message is read byte by byte, so big-endian s390x must agree with
 * little-endian aarch64 and x86-64. */
#ifndef QUS_SHA256_H
#define QUS_SHA256_H
#include <stddef.h>
#include <stdint.h>

void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
