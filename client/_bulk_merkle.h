/*
 * RFC 6962 §2.1 hashing over whole levels for tlog_client._bulk:
 *   leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right).
 * A level is consecutive 32-byte hashes in memory.
 *
 * Messages are laid out already padded (FIPS 180-4 §5.1.1) in block buffers
 * whose constant bytes (prefix, 0x80, bit length) are written once, and
 * their blocks go to the selected compression function (_bulk_sha256.h) in
 * one call.
 *
 * Large inputs (>= PAR_MIN_HASHES hashes) are split over several threads
 * (pthreads; callers release the GIL): TLOG_BULK_THREADS, default min(2,
 * CPUs this process may run on), 1 to disable; configure() changes it at
 * run time. Small calls, such as the server's batches, never start a
 * thread. Results do not depend on the split. Two threads measured: 1.8 x
 * for a level (read in place), 1.6 x for leaves (gathered from the list by
 * one thread).
 *
 * Nothing here touches Python objects: all of it may run without the GIL.
 */
#ifndef TLOG_BULK_MERKLE_H
#define TLOG_BULK_MERKLE_H

#include <stddef.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define HAVE_PTHREADS 1
#endif

#include "_bulk_sha256.h"

#define HASH 32
#define PAIR 64

/* Most threads a call uses (configure() accepts 1..MAX_THREADS). */
#define MAX_THREADS 16

/* Leaf hashes of count entries (pointers and lengths) to dst. */
TLOG_INTERNAL void tlog_hash_leaves(const unsigned char *const *ptr, const size_t *len,
                                    size_t count, unsigned char *dst);
/* Parents of the npairs complete pairs at src, written to dst (which may be
 * src itself). */
TLOG_INTERNAL void tlog_hash_pairs(const unsigned char *src, size_t npairs,
                                   unsigned char *dst);
/* Root of n >= 1 hashes at level. work has room for ceil(n / 2) hashes. */
TLOG_INTERNAL void tlog_root_hash(const unsigned char *level, size_t n,
                                  unsigned char *work, unsigned char *out);

/* Fold the n 32-byte hashes of a proof path into seed (see _bulk_merkle.c). */
TLOG_INTERNAL void tlog_fold_path(unsigned char seed[HASH], const unsigned char *const *proof,
                                  size_t n, unsigned long long index, size_t inner,
                                  int right_only);

/* tlog_hash_pairs and tlog_root_hash with threads for large inputs. */
TLOG_INTERNAL void tlog_par_hash_pairs(const unsigned char *src, size_t npairs,
                                       unsigned char *dst);
TLOG_INTERNAL void tlog_par_root_hash(const unsigned char *level, size_t n,
                                      unsigned char *work, unsigned char *out);

/* Threads for a call of n hashes: 1 below PAR_MIN_HASHES. */
TLOG_INTERNAL int tlog_threads_for(size_t n);
/* The threads setting for large inputs (1..MAX_THREADS); the default. */
TLOG_INTERNAL int tlog_threads(void);
TLOG_INTERNAL void tlog_set_threads(int n);
TLOG_INTERNAL int tlog_default_threads(void);

/* Leaf and node hashes with the selected compression against libcrypto's
 * one-shot SHA256(); 1 if they agree. */
TLOG_INTERNAL int tlog_self_check(void);

#endif /* TLOG_BULK_MERKLE_H */
