/*
 * tlog_client._bulk: compiled backend of tlog_client.bulk (SPEC §3.1, §8).
 *
 * RFC 6962 §2.1 hashing over whole levels:
 *   leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right).
 * A level is a bytes-like object of consecutive 32-byte hashes.
 *
 * Messages are laid out already padded (FIPS 180-4 §5.1.1) in block buffers
 * whose constant bytes (prefix, 0x80, bit length) are written once, and
 * their blocks go to a compression function in one call; the digest is the
 * chaining value (no finalisation step). Two compression functions:
 *
 * - SHA-NI (x86-64 CPUs with the SHA extensions; this file's own, from
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
 *
 * Large inputs (>= PAR_MIN_HASHES hashes) are split over several threads
 * (pthreads, GIL released): TLOG_BULK_THREADS, default min(2, CPUs this
 * process may run on), 1 to disable; configure() changes it at run time.
 * Small calls, such as the server's batches, never start a thread. Results
 * do not depend on the split. Two threads measured: 1.8 x for a level (read
 * in place), 1.6 x for leaves (gathered from the list by one thread).
 *
 * The hashing loops run without the GIL over memory this module owns (output
 * objects not yet shared, a private work buffer) or holds (buffer views and
 * references kept until the loop ends).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#define HAVE_PTHREADS 1
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

#if defined(OPENSSL_NO_DEPRECATED_3_0)
#error "this libcrypto was built without the low-level SHA256_* functions"
#endif

#define HASH 32
#define PAIR 64
#define BLOCK 64

/* Release the GIL only for work worth more than a GIL round trip (a waiting
 * thread may hold it for up to the switch interval). */
#define NOGIL_MIN_BYTES (64 * 1024)
/* Entries gathered (with the GIL) per hashing round (without it); small
 * enough for a round's entries to stay in the L2 cache until released. */
#define CHUNK_ITEMS 1024
#define CHUNK_BYTES (8 * 1024 * 1024)

/* Threads: only for calls of at least PAR_MIN_HASHES hashes (a thread start
 * and join costs tens of microseconds), with at least PAR_MIN_PART hashes
 * each. A threaded leaf_hashes gathers PAR_CHUNK_ITEMS entries per chunk
 * (see leaf_pipeline): larger chunks than alone, since the gathering of one
 * overlaps the hashing of the previous (measured at 10^6 entries: 1024
 * entries 125 ms, 8192 and more ~100 ms). */
#define MAX_THREADS 16
#define PAR_MIN_HASHES 16384
#define PAR_MIN_PART 4096
#define PAR_CHUNK_ITEMS 8192
/* A threaded root splits its level at multiples of 2^SPLIT_LEVELS hashes:
 * the parts are complete subtrees up to that height (see par_root_hash). */
#define SPLIT_LEVELS 10

static int n_threads = 1;   /* threads for large inputs (configure()) */
static int sha_ni_ok = 0;   /* the CPU has the SHA extensions, self-check passed */
static int use_sha_ni = 0;  /* SHA-NI selected */

static const unsigned char EMPTY_ROOT[HASH] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
    0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/* FIPS 180-4 §5.3.3: the initial hash value. */
static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t
to_be32(uint32_t x)
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
store_digest(const uint32_t st[8], unsigned char *out)
{
    uint32_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = to_be32(st[i]);
    memcpy(out, w, sizeof w);
}

/* ------------------------------------------------------------------ compression */

/* nblocks 64-byte blocks of m into the chaining value st. */
typedef void (*blocks_fn)(uint32_t st[8], const unsigned char *m, size_t nblocks);
/* The same for two independent messages of nblocks blocks each. */
typedef void (*blocks2_fn)(uint32_t sa[8], const unsigned char *ma,
                           uint32_t sb[8], const unsigned char *mb, size_t nblocks);

/* libcrypto: a context holding the chaining value and nothing buffered, so
 * that SHA256_Update runs the compression over whole blocks only. */
static void
ossl_blocks(uint32_t st[8], const unsigned char *m, size_t nblocks)
{
    SHA256_CTX c;
    memcpy(c.h, st, sizeof c.h);
    c.Nl = c.Nh = 0;
    c.num = 0;
    c.md_len = SHA256_DIGEST_LENGTH;
    SHA256_Update(&c, m, nblocks * BLOCK);
    memcpy(st, c.h, sizeof c.h);
}

static void
ossl_blocks2(uint32_t sa[8], const unsigned char *ma,
             uint32_t sb[8], const unsigned char *mb, size_t nblocks)
{
    ossl_blocks(sa, ma, nblocks);
    ossl_blocks(sb, mb, nblocks);
}

#if defined(HAVE_SHA_NI)
/* SHA-256 with the x86 SHA extensions. The eight working variables live in
 * two registers as the round instruction wants them (32-bit lanes listed
 * from lane 0): "abef" = F E B A and "cdgh" = H G D C. sha256rnds2(cdgh,
 * abef, wk) runs two rounds with the round inputs W[t] + K[t] in lanes 0
 * and 1 of wk and returns the new abef; the old abef is the new cdgh. */
#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* FIPS 180-4 §4.2.2 */
static const uint32_t K256[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define KV(g) _mm_load_si128((const __m128i *)&K256[4 * (g)])

/* Four message words, big-endian in the block, as lanes W[t]..W[t+3]. */
#define LOAD_W(p, i) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((p) + 16 * (i))), bswap)

/* Next four schedule words (FIPS 180-4 §6.2.2 step 1) into a, from the
 * previous sixteen in a, b, c, d (oldest first): msg1 adds sigma0 terms,
 * alignr supplies W[t-7], msg2 adds the sigma1 terms. */
#define SCHED(a, b, c, d) \
    a = _mm_sha256msg2_epu32( \
        _mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)), d)

/* Four rounds with message words w and constants kv. */
#define ROUNDS4(abef, cdgh, w, kv) do { \
        __m128i wk_ = _mm_add_epi32(w, kv); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_); \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk_, 0x0E)); \
    } while (0)

SHANI static inline void
ni_load(const uint32_t st[8], __m128i *abef, __m128i *cdgh)
{
    __m128i abcd = _mm_loadu_si128((const __m128i *)st);       /* A B C D */
    __m128i efgh = _mm_loadu_si128((const __m128i *)(st + 4)); /* E F G H */
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);              /* B A D C */
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);              /* H G F E */
    *abef = _mm_alignr_epi8(badc, hgfe, 8);                    /* F E B A */
    *cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);                 /* H G D C */
}

SHANI static inline void
ni_store(uint32_t st[8], __m128i abef, __m128i cdgh)
{
    __m128i abef_r = _mm_shuffle_epi32(abef, 0x1B);            /* A B E F */
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xB1);              /* G H C D */
    _mm_storeu_si128((__m128i *)st, _mm_blend_epi16(abef_r, ghcd, 0xF0));       /* A B C D */
    _mm_storeu_si128((__m128i *)(st + 4), _mm_alignr_epi8(ghcd, abef_r, 8));    /* E F G H */
}

SHANI static void
ni_blocks(uint32_t st[8], const unsigned char *m, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef, cdgh;
    ni_load(st, &abef, &cdgh);
    for (; nblocks; nblocks--, m += BLOCK) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w0 = LOAD_W(m, 0), w1 = LOAD_W(m, 1), w2 = LOAD_W(m, 2), w3 = LOAD_W(m, 3);
        ROUNDS4(abef, cdgh, w0, KV(0));
        ROUNDS4(abef, cdgh, w1, KV(1));
        ROUNDS4(abef, cdgh, w2, KV(2));
        ROUNDS4(abef, cdgh, w3, KV(3));
        for (int g = 4; g < 16; g += 4) {
            SCHED(w0, w1, w2, w3); ROUNDS4(abef, cdgh, w0, KV(g));
            SCHED(w1, w2, w3, w0); ROUNDS4(abef, cdgh, w1, KV(g + 1));
            SCHED(w2, w3, w0, w1); ROUNDS4(abef, cdgh, w2, KV(g + 2));
            SCHED(w3, w0, w1, w2); ROUNDS4(abef, cdgh, w3, KV(g + 3));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    ni_store(st, abef, cdgh);
}

/* Two messages, their rounds interleaved: while one stream waits for a
 * round instruction's result, the other's can issue. */
#define ROUNDS4_2(g, x, y) do { \
        __m128i kv_ = KV(g); \
        ROUNDS4(abef_a, cdgh_a, x, kv_); \
        ROUNDS4(abef_b, cdgh_b, y, kv_); \
    } while (0)

SHANI static void
ni_blocks2(uint32_t sa[8], const unsigned char *ma,
           uint32_t sb[8], const unsigned char *mb, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef_a, cdgh_a, abef_b, cdgh_b;
    ni_load(sa, &abef_a, &cdgh_a);
    ni_load(sb, &abef_b, &cdgh_b);
    for (; nblocks; nblocks--, ma += BLOCK, mb += BLOCK) {
        __m128i abef_a0 = abef_a, cdgh_a0 = cdgh_a, abef_b0 = abef_b, cdgh_b0 = cdgh_b;
        __m128i x0 = LOAD_W(ma, 0), x1 = LOAD_W(ma, 1), x2 = LOAD_W(ma, 2), x3 = LOAD_W(ma, 3);
        __m128i y0 = LOAD_W(mb, 0), y1 = LOAD_W(mb, 1), y2 = LOAD_W(mb, 2), y3 = LOAD_W(mb, 3);
        ROUNDS4_2(0, x0, y0);
        ROUNDS4_2(1, x1, y1);
        ROUNDS4_2(2, x2, y2);
        ROUNDS4_2(3, x3, y3);
        for (int g = 4; g < 16; g += 4) {
            SCHED(x0, x1, x2, x3); SCHED(y0, y1, y2, y3); ROUNDS4_2(g, x0, y0);
            SCHED(x1, x2, x3, x0); SCHED(y1, y2, y3, y0); ROUNDS4_2(g + 1, x1, y1);
            SCHED(x2, x3, x0, x1); SCHED(y2, y3, y0, y1); ROUNDS4_2(g + 2, x2, y2);
            SCHED(x3, x0, x1, x2); SCHED(y3, y0, y1, y2); ROUNDS4_2(g + 3, x3, y3);
        }
        abef_a = _mm_add_epi32(abef_a, abef_a0);
        cdgh_a = _mm_add_epi32(cdgh_a, cdgh_a0);
        abef_b = _mm_add_epi32(abef_b, abef_b0);
        cdgh_b = _mm_add_epi32(cdgh_b, cdgh_b0);
    }
    ni_store(sa, abef_a, cdgh_a);
    ni_store(sb, abef_b, cdgh_b);
}

/* CPUID: SSSE3 (leaf 1 ECX bit 9), SSE4.1 (leaf 1 ECX bit 19), SHA (leaf 7
 * EBX bit 29). */
static int
cpu_has_sha_ni(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;
}
#endif /* HAVE_SHA_NI */

static blocks_fn sha_blocks = ossl_blocks;
static blocks2_fn sha_blocks2 = ossl_blocks2;

/* Select the compression functions (SHA-NI only where it passed its check). */
static void
select_sha_ni(int on)
{
    use_sha_ni = on && sha_ni_ok;
#if defined(HAVE_SHA_NI)
    if (use_sha_ni) {
        sha_blocks = ni_blocks;
        sha_blocks2 = ni_blocks2;
        return;
    }
#endif
    sha_blocks = ossl_blocks;
    sha_blocks2 = ossl_blocks2;
}

/* ------------------------------------------------------------------ messages */

/* Node hashing: the 65-byte message 0x01 || left || right padded to two
 * blocks. Only bytes 1..64 change from node to node. */
typedef struct {
    unsigned char b[2 * BLOCK];
} node_block;

static inline void
node_block_init(node_block *nb)
{
    memset(nb->b, 0, sizeof nb->b);
    nb->b[0] = 0x01;
    nb->b[1 + PAIR] = 0x80;
    /* bit length 65 * 8 = 520, big-endian in the last 8 bytes */
    nb->b[2 * BLOCK - 2] = (unsigned char)(520 >> 8);
    nb->b[2 * BLOCK - 1] = (unsigned char)(520 & 0xff);
}

/* Write the padding after `used` message bytes at m (FIPS 180-4 §5.1.1:
 * 0x80, zeros, the message length in bits as 64-bit big-endian) and return
 * the padded length, a multiple of 64. m has room for it. */
static inline size_t
pad(unsigned char *m, size_t used, uint64_t msglen)
{
    uint64_t bits = msglen * 8;
    m[used++] = 0x80;
    size_t end = (used + 8 + BLOCK - 1) & ~(size_t)(BLOCK - 1);
    memset(m + used, 0, end - 8 - used);
    for (int i = 0; i < 8; i++)
        m[end - 1 - i] = (unsigned char)(bits >> (8 * i));
    return end;
}

/* Leaf hash SHA-256(0x00 || data). An entry shorter than COPY_MAX is copied
 * behind the prefix and padded (leaf_msg), so the compression gets all its
 * blocks in one call, and two such leaves can be hashed together. A longer
 * one is hashed in place: prefix and first 63 bytes form the first block,
 * the whole blocks that follow are passed straight from the entry, and the
 * tail is padded in a block buffer. */
#define COPY_MAX 1024

typedef struct {
    unsigned char b[COPY_MAX + 2 * BLOCK];
} leaf_buf;

/* The padded leaf message of a short entry in lb; returns its blocks. */
static inline size_t
leaf_msg(leaf_buf *lb, const unsigned char *data, size_t len)
{
    lb->b[0] = 0x00;
    memcpy(lb->b + 1, data, len);
    return pad(lb->b, len + 1, (uint64_t)len + 1) / BLOCK;
}

static void
leaf_hash_long(const unsigned char *data, size_t len, unsigned char *out)
{
    uint32_t st[8];
    unsigned char b[2 * BLOCK];
    uint64_t msglen = (uint64_t)len + 1;
    memcpy(st, IV, sizeof st);
    b[0] = 0x00;
    memcpy(b + 1, data, BLOCK - 1);
    sha_blocks(st, b, 1);
    data += BLOCK - 1;
    len -= BLOCK - 1;
    size_t whole = len / BLOCK;
    if (whole)
        sha_blocks(st, data, whole);
    data += whole * BLOCK;
    len -= whole * BLOCK;
    memcpy(b, data, len);
    sha_blocks(st, b, pad(b, len, msglen) / BLOCK);
    store_digest(st, out);
}

static void
leaf_hash(const unsigned char *data, size_t len, unsigned char *out)
{
    if (len >= COPY_MAX) {
        leaf_hash_long(data, len, out);
        return;
    }
    leaf_buf lb;
    uint32_t st[8];
    memcpy(st, IV, sizeof st);
    sha_blocks(st, lb.b, leaf_msg(&lb, data, len));
    store_digest(st, out);
}

/* Two short leaves: their common blocks together, then the longer one's
 * remaining blocks alone. */
static void
leaf_hash2(const unsigned char *da, size_t la, const unsigned char *db, size_t lb_,
           unsigned char *out)
{
    if (la >= COPY_MAX || lb_ >= COPY_MAX) {
        leaf_hash(da, la, out);
        leaf_hash(db, lb_, out + HASH);
        return;
    }
    leaf_buf ma, mb;
    uint32_t sa[8], sb[8];
    size_t na = leaf_msg(&ma, da, la), nb = leaf_msg(&mb, db, lb_);
    size_t common = na < nb ? na : nb;
    memcpy(sa, IV, sizeof sa);
    memcpy(sb, IV, sizeof sb);
    sha_blocks2(sa, ma.b, sb, mb.b, common);
    if (na > common)
        sha_blocks(sa, ma.b + BLOCK * common, na - common);
    if (nb > common)
        sha_blocks(sb, mb.b + BLOCK * common, nb - common);
    store_digest(sa, out);
    store_digest(sb, out + HASH);
}

/* Leaf hashes of count entries (pointers and lengths) to dst. */
static void
hash_leaves(const unsigned char *const *ptr, const size_t *len, size_t count,
            unsigned char *dst)
{
    size_t i = 0;
    for (; i + 2 <= count; i += 2)
        leaf_hash2(ptr[i], len[i], ptr[i + 1], len[i + 1], dst + HASH * i);
    if (i < count)
        leaf_hash(ptr[i], len[i], dst + HASH * i);
}

/* Parents of the npairs complete pairs at src, written to dst (which may be
 * src itself: parents i and i + 1 are written at 32*i after pairs i and
 * i + 1, at 64*i, are copied into the node blocks). Two nodes at a time. */
static void
hash_pairs(const unsigned char *src, size_t npairs, unsigned char *dst)
{
    node_block na, nb;
    uint32_t sa[8], sb[8];
    node_block_init(&na);
    node_block_init(&nb);
    size_t i = 0;
    for (; i + 2 <= npairs; i += 2) {
        memcpy(na.b + 1, src + PAIR * i, PAIR);
        memcpy(nb.b + 1, src + PAIR * (i + 1), PAIR);
        memcpy(sa, IV, sizeof sa);
        memcpy(sb, IV, sizeof sb);
        sha_blocks2(sa, na.b, sb, nb.b, 2);
        store_digest(sa, dst + HASH * i);
        store_digest(sb, dst + HASH * (i + 1));
    }
    if (i < npairs) {
        memcpy(na.b + 1, src + PAIR * i, PAIR);
        memcpy(sa, IV, sizeof sa);
        sha_blocks(sa, na.b, 2);
        store_digest(sa, dst + HASH * i);
    }
}

/* Up to `levels` levels of bottom-up pairing from the n >= 1 hashes at src
 * into dst (room for ceil(n / 2) hashes; may be src itself after the first
 * level), a lone last hash carried up unchanged (RFC 6962). Returns the
 * number of hashes left at dst (or at src if no level was needed). */
static size_t
reduce_levels(const unsigned char *src, size_t n, unsigned char *dst, int levels)
{
    for (; levels > 0 && n > 1; levels--) {
        size_t pairs = n / 2;
        hash_pairs(src, pairs, dst);
        if (n & 1)
            memmove(dst + HASH * pairs, src + HASH * (n - 1), HASH);
        n = pairs + (n & 1);
        src = dst;
    }
    return n;
}

/* Root of n >= 1 hashes at level. work has room for ceil(n / 2) hashes. */
static void
root_hash(const unsigned char *level, size_t n, unsigned char *work, unsigned char *out)
{
    if (n == 1) {
        memcpy(out, level, HASH);
        return;
    }
    reduce_levels(level, n, work, 64);
    memcpy(out, work, HASH);
}

/* ------------------------------------------------------------------ threads */

typedef void *(*task_fn)(void *);

/* Run fn on n argument records `size` bytes apart: the first in this
 * thread, the others in new threads; one that cannot be started runs here.
 * Called without the GIL; fn must not touch Python objects. */
static void
run_tasks(task_fn fn, void *args, size_t size, int n)
{
    char *a = args;
#if defined(HAVE_PTHREADS)
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 1; i < n; i++)
        started[i] = pthread_create(&tid[i], NULL, fn, a + size * i) == 0;
    fn(a);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn(a + size * i);
    }
#else
    for (int i = 0; i < n; i++)
        fn(a + size * i);
#endif
}

/* Threads for a part of n hashes: one per PAR_MIN_PART, at most n_threads. */
static int
threads_for_part(size_t n)
{
    size_t t = n / PAR_MIN_PART;
    if (t < 1)
        return 1;
    return t < (size_t)n_threads ? (int)t : n_threads;
}

/* Threads for a call of n hashes: none below PAR_MIN_HASHES. */
static int
threads_for(size_t n)
{
    return n < PAR_MIN_HASHES ? 1 : threads_for_part(n);
}

typedef struct {
    const unsigned char *src;
    size_t npairs;
    unsigned char *dst;
} pairs_task;

static void *
pairs_task_run(void *p)
{
    pairs_task *t = p;
    hash_pairs(t->src, t->npairs, t->dst);
    return NULL;
}

/* hash_pairs with the pairs cut into equal ranges, one per thread. */
static void
par_hash_pairs(const unsigned char *src, size_t npairs, unsigned char *dst)
{
    int t = threads_for(npairs);
    pairs_task tasks[MAX_THREADS];
    size_t start = 0;
    for (int i = 0; i < t; i++) {
        size_t end = npairs / t * (i + 1) + (i + 1 == t ? npairs % t : 0);
        tasks[i] = (pairs_task){src + PAIR * start, end - start, dst + HASH * start};
        start = end;
    }
    run_tasks(pairs_task_run, tasks, sizeof tasks[0], t);
}

typedef struct {
    const unsigned char *src;
    size_t n;
    unsigned char *dst;
    const unsigned char *res; /* out: where the part's reduced hashes are */
    size_t left;              /* out: how many */
} reduce_task;

static void *
reduce_task_run(void *p)
{
    reduce_task *t = p;
    t->left = reduce_levels(t->src, t->n, t->dst, SPLIT_LEVELS);
    t->res = t->n > 1 ? t->dst : t->src;
    return NULL;
}

/* root_hash with threads. The level is cut at multiples of 2^SPLIT_LEVELS
 * hashes: for SPLIT_LEVELS levels no pair crosses a cut and the lone last
 * hash of a level is always in the last part, so each part can pair its own
 * range into its own range of work (parts i's at work + 32 * start_i / 2),
 * and the parts' results side by side are that level of the whole tree.
 * The few hashes left (n / 2^SPLIT_LEVELS) are finished in this thread. */
static void
par_root_hash(const unsigned char *level, size_t n, unsigned char *work, unsigned char *out)
{
    int t = threads_for(n);
    const size_t units = n >> SPLIT_LEVELS;
    if (t < 2 || units < (size_t)t) {
        root_hash(level, n, work, out);
        return;
    }
    reduce_task tasks[MAX_THREADS];
    size_t start = 0;
    for (int i = 0; i < t; i++) {
        size_t end = i + 1 == t ? n : (units * (i + 1) / t) << SPLIT_LEVELS;
        tasks[i] = (reduce_task){level + HASH * start, end - start, work + HASH * (start / 2),
                                 NULL, 0};
        start = end;
    }
    run_tasks(reduce_task_run, tasks, sizeof tasks[0], t);
    size_t m = 0;
    for (int i = 0; i < t; i++) {
        memmove(work + HASH * m, tasks[i].res, HASH * tasks[i].left);
        m += tasks[i].left;
    }
    root_hash(work, m, work, out);
}

/* ------------------------------------------------------------------ Python */

static int
get_level(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len % HASH) {
        PyErr_Format(PyExc_ValueError,
                     "level length %zd is not a multiple of %d", view->len, HASH);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(parent_level_doc,
"parent_level(level) -> bytes\n\n"
"Node hash of each complete pair of the level (a bytes-like object whose\n"
"length is a multiple of 32); a trailing unpaired hash is not carried.");

static PyObject *
parent_level(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (get_level(arg, &view) < 0)
        return NULL;
    size_t pairs = (size_t)view.len / PAIR;
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pairs * HASH));
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    if (view.len >= NOGIL_MIN_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        par_hash_pairs(view.buf, pairs, dst);
        Py_END_ALLOW_THREADS
    }
    else {
        hash_pairs(view.buf, pairs, dst);
    }
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(root_of_level_doc,
"root_of_level(level) -> bytes\n\n"
"RFC 6962 root of the tree whose leaf hashes are the level (a bytes-like\n"
"object whose length is a multiple of 32); SHA-256(\"\") for an empty level.");

static PyObject *
root_of_level(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    unsigned char root[HASH];
    if (get_level(arg, &view) < 0)
        return NULL;
    size_t n = (size_t)view.len / HASH;
    if (n == 0) {
        PyBuffer_Release(&view);
        return PyBytes_FromStringAndSize((const char *)EMPTY_ROOT, HASH);
    }
    unsigned char *work = PyMem_RawMalloc(HASH * ((n + 1) / 2));
    if (work == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (view.len >= NOGIL_MIN_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        par_root_hash(view.buf, n, work, root);
        Py_END_ALLOW_THREADS
    }
    else {
        root_hash(view.buf, n, work, root);
    }
    PyMem_RawFree(work);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)root, HASH);
}

/* One round of leaf hashing: entries whose bytes are held while the GIL is
 * released. A bytes object is read in place (immutable) and kept alive by a
 * reference; any other bytes-like object through a buffer view. The arrays
 * hold cap items (one allocation; views' pages are only touched if used). */
typedef struct {
    Py_ssize_t cap;
    Py_buffer *views;
    const unsigned char **ptr;
    size_t *len;
    PyObject **refs;
    Py_ssize_t nrefs, nviews;
} chunk;

static chunk *
chunk_new(Py_ssize_t cap)
{
    size_t item = sizeof(Py_buffer) + sizeof(void *) + sizeof(size_t) + sizeof(PyObject *);
    chunk *ch = PyMem_RawMalloc(sizeof *ch + item * (size_t)cap);
    if (ch == NULL)
        return NULL;
    ch->cap = cap;
    ch->views = (Py_buffer *)(ch + 1);
    ch->ptr = (const unsigned char **)(ch->views + cap);
    ch->len = (size_t *)(ch->ptr + cap);
    ch->refs = (PyObject **)(ch->len + cap);
    ch->nrefs = ch->nviews = 0;
    return ch;
}

static void
chunk_release(chunk *ch)
{
    for (Py_ssize_t i = 0; i < ch->nrefs; i++)
        Py_DECREF(ch->refs[i]);
    for (Py_ssize_t i = 0; i < ch->nviews; i++)
        PyBuffer_Release(&ch->views[i]);
    ch->nrefs = ch->nviews = 0;
}

static int
list_resized(PyObject *seq, Py_ssize_t n)
{
    if (PySequence_Fast_GET_SIZE(seq) == n)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "list changed size during leaf_hashes");
    return 1;
}

/* Add item (entry i) to the chunk; returns -1 with an exception set. */
static int
chunk_add(chunk *ch, Py_ssize_t k, PyObject *item, int shared_list, Py_ssize_t i)
{
    if (PyBytes_Check(item)) {
        if (shared_list) {
            Py_INCREF(item);
            ch->refs[ch->nrefs++] = item;
        }
        ch->ptr[k] = (const unsigned char *)PyBytes_AS_STRING(item);
        ch->len[k] = (size_t)PyBytes_GET_SIZE(item);
        return 0;
    }
    Py_buffer *v = &ch->views[ch->nviews];
    if (PyObject_GetBuffer(item, v, PyBUF_SIMPLE) < 0) {
        /* Same error type as the pure-Python backend (b"\x00" + item
         * raises TypeError). */
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "entry %zd: a contiguous bytes-like object is required, not '%.100s'",
                     i, Py_TYPE(item)->tp_name);
        return -1;
    }
    ch->nviews++;
    ch->ptr[k] = v->buf;
    ch->len[k] = (size_t)v->len;
    return 0;
}

/* Gather entries i, i + 1, ... of seq (n items) into the chunk: up to its
 * capacity or CHUNK_BYTES. Returns the count (bytes in *bytes), or -1. */
static Py_ssize_t
chunk_gather(chunk *ch, PyObject *seq, Py_ssize_t i, Py_ssize_t n, int shared_list,
             size_t *bytes)
{
    if (list_resized(seq, n))
        return -1;
    PyObject **items = PySequence_Fast_ITEMS(seq); /* a list may move */
    Py_ssize_t count = 0;
    *bytes = 0;
    while (i + count < n && count < ch->cap && *bytes < CHUNK_BYTES) {
        PyObject *item = items[i + count];
        int is_bytes = PyBytes_Check(item);
        if (chunk_add(ch, count, item, shared_list, i + count) < 0)
            return -1;
        if (!is_bytes) {
            /* An exporter may run code that changes the list. */
            if (list_resized(seq, n))
                return -1;
            items = PySequence_Fast_ITEMS(seq);
        }
        *bytes += ch->len[count];
        count++;
    }
    return count;
}

#if defined(HAVE_PTHREADS)
/* Threaded leaf_hashes, a pipeline: while this thread (holding the GIL)
 * gathers the next chunk, helper threads hash the current one; then this
 * thread (GIL released) joins in until the chunk is done and publishes the
 * next. Chunks are hashed in steps of LEAF_STEP entries claimed in turn, so
 * that the threads share the work whatever their speed, and the helpers
 * stay busy across chunks (measured: helpers started per chunk, idle while
 * the entries are gathered, ran ~50 % slower for their first few hundred
 * milliseconds after the machine had been idle). */
#define LEAF_STEP 256

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* to helpers: a chunk was published, or quit */
    pthread_cond_t idle; /* to this thread: the chunk is all hashed */
    const chunk *cur;
    size_t count, next, done;
    unsigned char *dst;
    int quit;
} pipeline;

/* Claim and hash steps of the current chunk until none is left. Called
 * with p->mu held; returns with it held. */
static void
pipe_work(pipeline *p)
{
    while (p->cur != NULL && p->next < p->count) {
        size_t start = p->next;
        size_t k = p->count - start < LEAF_STEP ? p->count - start : LEAF_STEP;
        const chunk *ch = p->cur;
        unsigned char *dst = p->dst + HASH * start;
        p->next += k;
        pthread_mutex_unlock(&p->mu);
        hash_leaves(ch->ptr + start, ch->len + start, k, dst);
        pthread_mutex_lock(&p->mu);
        p->done += k;
        if (p->done == p->count)
            pthread_cond_signal(&p->idle);
    }
}

static void *
pipe_helper(void *arg)
{
    pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->quit) {
        pipe_work(p);
        if (!p->quit)
            pthread_cond_wait(&p->work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Hand a gathered chunk (count entries, hashes to dst) to the threads. */
static void
pipe_publish(pipeline *p, const chunk *ch, size_t count, unsigned char *dst)
{
    pthread_mutex_lock(&p->mu);
    p->cur = ch;
    p->count = count;
    p->next = p->done = 0;
    p->dst = dst;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

/* Hash with the helpers until the current chunk (if any) is done. */
static void
pipe_finish(pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    pipe_work(p);
    while (p->cur != NULL && p->done < p->count)
        pthread_cond_wait(&p->idle, &p->mu);
    p->cur = NULL;
    pthread_mutex_unlock(&p->mu);
}

static void
pipe_stop(pipeline *p, pthread_t *tid, int helpers)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < helpers; k++)
        pthread_join(tid[k], NULL);
}

/* Leaf hashes of the n entries of seq into dst with t threads (this one
 * and t - 1 helpers; with none started this thread hashes alone). Two
 * chunks alternate: one being gathered, one being hashed. Returns -1 with
 * an exception set. */
static int
leaf_pipeline(PyObject *seq, Py_ssize_t n, int shared_list, unsigned char *dst, int t)
{
    chunk *ch[2] = {chunk_new(PAR_CHUNK_ITEMS), chunk_new(PAR_CHUNK_ITEMS)};
    pipeline p = {.cur = NULL, .quit = 0};
    pthread_t tid[MAX_THREADS];
    int helpers = 0, rc = 0, cur = -1;
    if (ch[0] == NULL || ch[1] == NULL) {
        PyMem_RawFree(ch[0]);
        PyMem_RawFree(ch[1]);
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.work, NULL);
    pthread_cond_init(&p.idle, NULL);
    for (int k = 1; k < t; k++)
        helpers += pthread_create(&tid[helpers], NULL, pipe_helper, &p) == 0;

    for (Py_ssize_t i = 0;;) {
        int nxt = cur < 0 ? 0 : 1 - cur;
        Py_ssize_t count = 0;
        size_t bytes;
        if (i < n) {
            count = chunk_gather(ch[nxt], seq, i, n, shared_list, &bytes);
            if (count < 0) {
                chunk_release(ch[nxt]); /* never published */
                rc = -1;
            }
        }
        Py_BEGIN_ALLOW_THREADS
        if (cur >= 0)
            pipe_finish(&p);
        if (count > 0)
            pipe_publish(&p, ch[nxt], (size_t)count, dst + HASH * i);
        Py_END_ALLOW_THREADS
        if (cur >= 0)
            chunk_release(ch[cur]);
        if (count <= 0)
            break;
        cur = nxt;
        i += count;
    }
    Py_BEGIN_ALLOW_THREADS
    pipe_stop(&p, tid, helpers);
    Py_END_ALLOW_THREADS
    pthread_cond_destroy(&p.idle);
    pthread_cond_destroy(&p.work);
    pthread_mutex_destroy(&p.mu);
    PyMem_RawFree(ch[0]);
    PyMem_RawFree(ch[1]);
    return rc;
}
#endif /* HAVE_PTHREADS */

PyDoc_STRVAR(leaf_hashes_doc,
"leaf_hashes(entries) -> bytes\n\n"
"Leaf hashes SHA-256(0x00 || entry) of an iterable of bytes-like entries,\n"
"concatenated in order (32 bytes each). A list must not change size during\n"
"the call (RuntimeError).");

static PyObject *
leaf_hashes(PyObject *module, PyObject *arg)
{
    /* A list or tuple is read as it is, chunk by chunk, each chunk's items
     * held by a reference or view while the GIL is released (another thread
     * may change a list meanwhile). Any other iterable is first copied into a
     * private list. Not copying a caller's list saves touching every entry
     * object twice more (measured 5 % of the hashing time at 10^6 entries). */
    PyObject *seq;
    int shared_list = 0;
    if (PyTuple_CheckExact(arg) || PyList_CheckExact(arg)) {
        Py_INCREF(arg);
        seq = arg;
        shared_list = PyList_CheckExact(arg);
    }
    else {
        seq = PySequence_List(arg);
        if (seq == NULL)
            return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    chunk *ch = NULL;

    if ((size_t)n > (size_t)PY_SSIZE_T_MAX / HASH) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * HASH);
    if (result == NULL || n == 0)
        goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
#if defined(HAVE_PTHREADS)
    int t = threads_for((size_t)n);
    if (t > 1) {
        if (leaf_pipeline(seq, n, shared_list, dst, t) < 0)
            Py_CLEAR(result);
        goto done;
    }
#endif
    ch = chunk_new(n < CHUNK_ITEMS ? n : CHUNK_ITEMS);
    if (ch == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n;) {
        size_t bytes;
        Py_ssize_t count = chunk_gather(ch, seq, i, n, shared_list, &bytes);
        if (count < 0) {
            chunk_release(ch);
            Py_CLEAR(result);
            goto done;
        }
        if (bytes >= NOGIL_MIN_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            hash_leaves(ch->ptr, ch->len, (size_t)count, dst + HASH * i);
            Py_END_ALLOW_THREADS
        }
        else {
            hash_leaves(ch->ptr, ch->len, (size_t)count, dst + HASH * i);
        }
        chunk_release(ch);
        i += count;
    }

done:
    PyMem_RawFree(ch);
    Py_DECREF(seq);
    return result;
}

static PyObject *
config_dict(void)
{
    return Py_BuildValue("{s:i,s:O,s:O}", "threads", n_threads,
                         "sha_ni", use_sha_ni ? Py_True : Py_False,
                         "sha_ni_available", sha_ni_ok ? Py_True : Py_False);
}

PyDoc_STRVAR(configure_doc,
"configure(*, threads=None, sha_ni=None) -> dict\n\n"
"Set the number of threads used for large inputs (1 to 16; 0 for the\n"
"default, min(2, usable CPUs)) and whether to use this module's SHA-NI\n"
"code where the CPU has it (else libcrypto's SHA-256). None leaves a\n"
"setting as it is. Returns the settings in force: threads, sha_ni and\n"
"sha_ni_available. Process-wide; results never depend on them.");

static int default_threads(void);

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"threads", "sha_ni", NULL};
    PyObject *threads = Py_None, *sha_ni = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OO:configure", kwlist,
                                     &threads, &sha_ni))
        return NULL;
    if (threads != Py_None) {
        long t = PyLong_AsLong(threads);
        if (t == -1 && PyErr_Occurred())
            return NULL;
        if (t < 0 || t > MAX_THREADS)
            return PyErr_Format(PyExc_ValueError, "threads must be 0..%d", MAX_THREADS);
        n_threads = t == 0 ? default_threads() : (int)t;
    }
    if (sha_ni != Py_None) {
        int on = PyObject_IsTrue(sha_ni);
        if (on < 0)
            return NULL;
        select_sha_ni(on);
    }
    return config_dict();
}

static PyMethodDef bulk_methods[] = {
    {"leaf_hashes", leaf_hashes, METH_O, leaf_hashes_doc},
    {"parent_level", parent_level, METH_O, parent_level_doc},
    {"root_of_level", root_of_level, METH_O, root_of_level_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ set-up */

/* min(2, CPUs this process may run on): a process pinned to one core (as
 * the server in the write benchmark) gets no threads. Two because the
 * hashing is compute-bound and the target machines have two cores; more
 * can be asked for with TLOG_BULK_THREADS. */
static int
default_threads(void)
{
    long cpus = 1;
#if defined(HAVE_PTHREADS)
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
#if defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
#endif
#endif
    return cpus >= 2 ? 2 : 1;
}

/* TLOG_BULK_THREADS=n (1..16; unset, empty, 0 or invalid: the default). */
static int
env_threads(void)
{
    const char *s = getenv("TLOG_BULK_THREADS");
    if (s != NULL && *s != '\0') {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end == '\0' && v >= 1)
            return v > MAX_THREADS ? MAX_THREADS : (int)v;
    }
    return default_threads();
}

/* Leaf hashes of messages of every length 0..199 at varied offsets (pairs of
 * leaves, including ones of unequal block counts), then nodes over them,
 * with the selected compression, against libcrypto's one-shot SHA256(). */
static int
self_check(void)
{
    enum { N = 200 };
    static unsigned char data[N + 16], got[N * HASH], want[N * HASH];
    unsigned char msg[N + 1];
    const unsigned char *ptr[N];
    size_t len[N];
    for (int i = 0; i < N + 16; i++)
        data[i] = (unsigned char)(i * 151 + 7);
    for (int i = 0; i < N; i++) {
        ptr[i] = data + i % 16;
        len[i] = (size_t)(i * 37 % N);
        msg[0] = 0x00;
        memcpy(msg + 1, ptr[i], len[i]);
        SHA256(msg, len[i] + 1, want + HASH * i);
    }
    hash_leaves(ptr, len, N, got);
    if (memcmp(got, want, sizeof got) != 0)
        return 0;
    for (int i = 0; i < N / 2; i++) {
        msg[0] = 0x01;
        memcpy(msg + 1, want + PAIR * i, PAIR);
        SHA256(msg, PAIR + 1, want + HASH * i);
    }
    hash_pairs(got, N / 2, got);
    return memcmp(got, want, HASH * (N / 2)) == 0;
}

static int
bulk_exec(PyObject *module)
{
    select_sha_ni(0);
    if (!self_check()) {
        PyErr_SetString(PyExc_ImportError, "libcrypto SHA-256 self-check failed");
        return -1;
    }
#if defined(HAVE_SHA_NI)
    /* SHA-NI is used only if it gives the same hashes as libcrypto here. */
    sha_ni_ok = cpu_has_sha_ni();
    if (sha_ni_ok) {
        select_sha_ni(1);
        sha_ni_ok = self_check();
    }
#endif
    const char *env = getenv("TLOG_BULK_SHA_NI");
    select_sha_ni(!(env != NULL && strcmp(env, "0") == 0));
    n_threads = env_threads();
    if (PyModule_AddStringConstant(module, "OPENSSL_VERSION",
                                   OpenSSL_version(OPENSSL_VERSION)) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot bulk_slots[] = {
    {Py_mod_exec, bulk_exec},
    {0, NULL},
};

static struct PyModuleDef bulk_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tlog_client._bulk",
    .m_doc = "Compiled RFC 6962 bulk hashing (SHA-NI or OpenSSL libcrypto SHA-256).",
    .m_size = 0,
    .m_methods = bulk_methods,
    .m_slots = bulk_slots,
};

PyMODINIT_FUNC
PyInit__bulk(void)
{
    return PyModuleDef_Init(&bulk_module);
}
