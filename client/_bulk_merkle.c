/*
 * RFC 6962 §2.1 hashing of tlog_client._bulk: the leaf and node messages
 * (padded per FIPS 180-4 §5.1.1), pairing of levels up to a root, and the
 * same split over threads. What it holds and how it is threaded:
 * _bulk_merkle.h.
 */

/* sched.h declares CPU_COUNT only with _GNU_SOURCE (which Python.h sets in
 * the module's other file). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bulk_merkle.h"

#if defined(HAVE_PTHREADS)
#include <sched.h>
#include <unistd.h>
#endif

/* Threads: only for calls of at least PAR_MIN_HASHES hashes (a thread start
 * and join costs tens of microseconds), with at least PAR_MIN_PART hashes
 * each. */
#define PAR_MIN_HASHES 16384
#define PAR_MIN_PART 4096
/* A threaded root splits its level at multiples of 2^SPLIT_LEVELS hashes:
 * the parts are complete subtrees up to that height (see tlog_par_root_hash). */
#define SPLIT_LEVELS 10

static int n_threads = 1;   /* threads for large inputs (configure()) */

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
    memcpy(st, TLOG_SHA256_IV, sizeof st);
    b[0] = 0x00;
    memcpy(b + 1, data, BLOCK - 1);
    tlog_sha_blocks(st, b, 1);
    data += BLOCK - 1;
    len -= BLOCK - 1;
    size_t whole = len / BLOCK;
    if (whole)
        tlog_sha_blocks(st, data, whole);
    data += whole * BLOCK;
    len -= whole * BLOCK;
    memcpy(b, data, len);
    tlog_sha_blocks(st, b, pad(b, len, msglen) / BLOCK);
    tlog_store_digest(st, out);
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
    memcpy(st, TLOG_SHA256_IV, sizeof st);
    tlog_sha_blocks(st, lb.b, leaf_msg(&lb, data, len));
    tlog_store_digest(st, out);
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
    memcpy(sa, TLOG_SHA256_IV, sizeof sa);
    memcpy(sb, TLOG_SHA256_IV, sizeof sb);
    tlog_sha_blocks2(sa, ma.b, sb, mb.b, common);
    if (na > common)
        tlog_sha_blocks(sa, ma.b + BLOCK * common, na - common);
    if (nb > common)
        tlog_sha_blocks(sb, mb.b + BLOCK * common, nb - common);
    tlog_store_digest(sa, out);
    tlog_store_digest(sb, out + HASH);
}

/* Leaf hashes of count entries (pointers and lengths) to dst. */
void
tlog_hash_leaves(const unsigned char *const *ptr, const size_t *len, size_t count,
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
void
tlog_hash_pairs(const unsigned char *src, size_t npairs, unsigned char *dst)
{
    node_block na, nb;
    uint32_t sa[8], sb[8];
    node_block_init(&na);
    node_block_init(&nb);
    size_t i = 0;
    for (; i + 2 <= npairs; i += 2) {
        memcpy(na.b + 1, src + PAIR * i, PAIR);
        memcpy(nb.b + 1, src + PAIR * (i + 1), PAIR);
        memcpy(sa, TLOG_SHA256_IV, sizeof sa);
        memcpy(sb, TLOG_SHA256_IV, sizeof sb);
        tlog_sha_blocks2(sa, na.b, sb, nb.b, 2);
        tlog_store_digest(sa, dst + HASH * i);
        tlog_store_digest(sb, dst + HASH * (i + 1));
    }
    if (i < npairs) {
        memcpy(na.b + 1, src + PAIR * i, PAIR);
        memcpy(sa, TLOG_SHA256_IV, sizeof sa);
        tlog_sha_blocks(sa, na.b, 2);
        tlog_store_digest(sa, dst + HASH * i);
    }
}

/* Fold a proof path into seed (RFC 9162 §2.1.3.2, §2.1.4.2): step k hashes
 * proof[k] with the seed, for k < inner on the side given by bit k of index
 * (1: proof[k] on the left; 0: on the right, or no step at all if
 * right_only), for k >= inner always on the left. */
void
tlog_fold_path(unsigned char seed[HASH], const unsigned char *const *proof, size_t n,
               unsigned long long index, size_t inner, int right_only)
{
    node_block nb;
    uint32_t st[8];
    node_block_init(&nb);
    for (size_t k = 0; k < n; k++, index >>= 1) {
        int left = k >= inner || (index & 1);
        if (!left && right_only)
            continue;
        memcpy(nb.b + 1, left ? proof[k] : seed, HASH);
        memcpy(nb.b + 1 + HASH, left ? seed : proof[k], HASH);
        memcpy(st, TLOG_SHA256_IV, sizeof st);
        tlog_sha_blocks(st, nb.b, 2);
        tlog_store_digest(st, seed);
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
        tlog_hash_pairs(src, pairs, dst);
        if (n & 1)
            memmove(dst + HASH * pairs, src + HASH * (n - 1), HASH);
        n = pairs + (n & 1);
        src = dst;
    }
    return n;
}

/* Root of n >= 1 hashes at level. work has room for ceil(n / 2) hashes. */
void
tlog_root_hash(const unsigned char *level, size_t n, unsigned char *work, unsigned char *out)
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
int
tlog_threads_for(size_t n)
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
    tlog_hash_pairs(t->src, t->npairs, t->dst);
    return NULL;
}

/* tlog_hash_pairs with the pairs cut into equal ranges, one per thread. */
void
tlog_par_hash_pairs(const unsigned char *src, size_t npairs, unsigned char *dst)
{
    int t = tlog_threads_for(npairs);
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

/* tlog_root_hash with threads. The level is cut at multiples of
 * 2^SPLIT_LEVELS hashes: for SPLIT_LEVELS levels no pair crosses a cut and
 * the lone last hash of a level is always in the last part, so each part can
 * pair its own range into its own range of work (parts i's at work + 32 *
 * start_i / 2), and the parts' results side by side are that level of the
 * whole tree. The few hashes left (n / 2^SPLIT_LEVELS) are finished in this
 * thread. */
void
tlog_par_root_hash(const unsigned char *level, size_t n, unsigned char *work, unsigned char *out)
{
    int t = tlog_threads_for(n);
    const size_t units = n >> SPLIT_LEVELS;
    if (t < 2 || units < (size_t)t) {
        tlog_root_hash(level, n, work, out);
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
    tlog_root_hash(work, m, work, out);
}

/* ------------------------------------------------------------------ settings */

int
tlog_threads(void)
{
    return n_threads;
}

void
tlog_set_threads(int n)
{
    n_threads = n;
}

/* min(2, CPUs this process may run on): a process pinned to one core (as
 * the server in the write benchmark) gets no threads. Two because the
 * hashing is compute-bound and the target machines have two cores; more
 * can be asked for with TLOG_BULK_THREADS. */
int
tlog_default_threads(void)
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

/* ------------------------------------------------------------------ self-check */

/* Leaf hashes of messages of every length 0..199 at varied offsets (pairs of
 * leaves, including ones of unequal block counts), then nodes over them,
 * with the selected compression, against libcrypto's one-shot SHA256(). */
int
tlog_self_check(void)
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
    tlog_hash_leaves(ptr, len, N, got);
    if (memcmp(got, want, sizeof got) != 0)
        return 0;
    for (int i = 0; i < N / 2; i++) {
        msg[0] = 0x01;
        memcpy(msg + 1, want + PAIR * i, PAIR);
        SHA256(msg, PAIR + 1, want + HASH * i);
    }
    tlog_hash_pairs(got, N / 2, got);
    return memcmp(got, want, HASH * (N / 2)) == 0;
}
