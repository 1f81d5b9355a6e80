/*
 * SHA-256 compression for tlog_client._bulk (FIPS 180-4 §6.2.2), the part
 * of the hashing that knows nothing of RFC 6962 (see _bulk_merkle.h).
 *
 * Callers lay their messages out already padded (FIPS 180-4 §5.1.1) and pass
 * whole 64-byte blocks; the digest is the chaining value (no finalisation
 * step). Two compression functions:
 *
 * - SHA-NI (x86-64 CPUs with the SHA extensions; this project's own, from
 *   FIPS 180-4 and Intel's SHA extensions reference). A single SHA-256
 *   stream is bound by the latency of the round instruction (sha256rnds2),
 *   so messages are hashed two at a time with their rounds interleaved:
 *   nodes in pairs, leaves in pairs over their common number of blocks.
 *   Used only if the CPU reports the extensions and a self-check against
 *   libcrypto passes at import.
 * - libcrypto's SHA256_Update on a context set to the chaining value: the
 *   fallback elsewhere, and when TLOG_BULK_SHA_NI=0. (OpenSSL uses SHA-NI
 *   too, but one message at a time; the SHA256() one-shot costs 5-10 times
 *   more per node, OpenSSL 3 routing it through an EVP fetch.)
 * Measured on the development machine (AMD EPYC, one thread), per 64-byte
 * block: ~40 ns for OpenSSL on one long message, ~44 ns through the
 * libcrypto path here, ~30 ns with the interleaved SHA-NI code.
 */
#ifndef TLOG_BULK_SHA256_H
#define TLOG_BULK_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Shared between the extension's files only: not exported from the module
 * (which exports PyInit__bulk alone), and reached without an indirection. */
#if defined(__GNUC__) || defined(__clang__)
#define TLOG_INTERNAL __attribute__((visibility("hidden")))
#else
#define TLOG_INTERNAL
#endif

#define BLOCK 64

/* FIPS 180-4 §5.3.3: the initial hash value. */
static const uint32_t TLOG_SHA256_IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t
tlog_to_be32(uint32_t x)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap32(x);
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return x;
#else
    unsigned char b[4] = {(unsigned char)(x >> 24), (unsigned char)(x >> 16),
                          (unsigned char)(x >> 8), (unsigned char)x};
    uint32_t r;
    memcpy(&r, b, 4);
    return r;
#endif
}

/* The digest is the chaining value, big-endian. */
static inline void
tlog_store_digest(const uint32_t st[8], unsigned char *out)
{
    uint32_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = tlog_to_be32(st[i]);
    memcpy(out, w, sizeof w);
}

/* nblocks 64-byte blocks of m into the chaining value st. */
typedef void (*tlog_blocks_fn)(uint32_t st[8], const unsigned char *m, size_t nblocks);
/* The same for two independent messages of nblocks blocks each. */
typedef void (*tlog_blocks2_fn)(uint32_t sa[8], const unsigned char *ma,
                                uint32_t sb[8], const unsigned char *mb, size_t nblocks);

/* The selected compression functions (libcrypto's until SHA-NI is selected). */
extern TLOG_INTERNAL tlog_blocks_fn tlog_sha_blocks;
extern TLOG_INTERNAL tlog_blocks2_fn tlog_sha_blocks2;

/* Whether the SHA-NI code may be used: the CPU reports the extensions and
 * check() passes with it selected (check compares hashes computed with the
 * selected compression against libcrypto's). Called once, at import; the
 * selection is then left to tlog_select_sha_ni. */
TLOG_INTERNAL void tlog_sha_ni_probe(int (*check)(void));
/* Select the compression functions (SHA-NI only where it passed its check). */
TLOG_INTERNAL void tlog_select_sha_ni(int on);
TLOG_INTERNAL int tlog_sha_ni_available(void); /* the probe passed */
TLOG_INTERNAL int tlog_sha_ni_selected(void);  /* SHA-NI in use */

#endif /* TLOG_BULK_SHA256_H */
