/*
 * SHA-256 compression backends of tlog_client._bulk (FIPS 180-4 §6.2.2):
 * libcrypto's low-level block function, this project's SHA-NI code (two
 * messages interleaved), CPU detection and the choice between them. What
 * each does and how fast: _bulk_sha256.h.
 */

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

#if defined(OPENSSL_NO_DEPRECATED_3_0)
#error "this libcrypto was built without the low-level SHA256_* functions"
#endif

#include "_bulk_sha256.h"

static int sha_ni_ok = 0;   /* the CPU has the SHA extensions, self-check passed */
static int use_sha_ni = 0;  /* SHA-NI selected */

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

TLOG_INTERNAL tlog_blocks_fn tlog_sha_blocks = ossl_blocks;
TLOG_INTERNAL tlog_blocks2_fn tlog_sha_blocks2 = ossl_blocks2;

void
tlog_select_sha_ni(int on)
{
    use_sha_ni = on && sha_ni_ok;
#if defined(HAVE_SHA_NI)
    if (use_sha_ni) {
        tlog_sha_blocks = ni_blocks;
        tlog_sha_blocks2 = ni_blocks2;
        return;
    }
#endif
    tlog_sha_blocks = ossl_blocks;
    tlog_sha_blocks2 = ossl_blocks2;
}

void
tlog_sha_ni_probe(int (*check)(void))
{
#if defined(HAVE_SHA_NI)
    /* SHA-NI is used only if it gives the same hashes as libcrypto here. */
    sha_ni_ok = cpu_has_sha_ni();
    if (sha_ni_ok) {
        tlog_select_sha_ni(1);
        sha_ni_ok = check();
    }
#else
    (void)check;
#endif
}

int
tlog_sha_ni_available(void)
{
    return sha_ni_ok;
}

int
tlog_sha_ni_selected(void)
{
    return use_sha_ni;
}
