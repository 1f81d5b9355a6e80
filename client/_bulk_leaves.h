/*
 * Entries of a Python list or tuple gathered for leaf hashing without the
 * GIL (tlog_client._bulk's leaf_hashes, SPEC §3.1): a chunk holds each
 * entry's bytes in place until it is released; with pthreads, a pipeline
 * gathers the next chunk while helper threads hash the current one
 * (_bulk_merkle.h does the hashing).
 *
 * Include after <Python.h>. Every function is called with the GIL held.
 */
#ifndef TLOG_BULK_LEAVES_H
#define TLOG_BULK_LEAVES_H

#include "_bulk_merkle.h"

/* Entries gathered (with the GIL) per hashing round (without it); small
 * enough for a round's entries to stay in the L2 cache until released. */
#define CHUNK_ITEMS 1024
#define CHUNK_BYTES (8 * 1024 * 1024)

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
} tlog_chunk;

/* A chunk with room for cap entries; NULL when out of memory. */
TLOG_INTERNAL tlog_chunk *tlog_chunk_new(Py_ssize_t cap);
/* Drop the references and views the chunk holds (it can be gathered again). */
TLOG_INTERNAL void tlog_chunk_release(tlog_chunk *ch);
/* Gather entries i, i + 1, ... of seq (n items) into the chunk: up to its
 * capacity or CHUNK_BYTES. Returns the count (bytes in *bytes), or -1 with an
 * exception set. shared_list: seq is the caller's list (references taken). */
TLOG_INTERNAL Py_ssize_t tlog_chunk_gather(tlog_chunk *ch, PyObject *seq, Py_ssize_t i,
                                           Py_ssize_t n, int shared_list, size_t *bytes);

#if defined(HAVE_PTHREADS)
/* Leaf hashes of the n entries of seq into dst with t threads. Returns -1
 * with an exception set. */
TLOG_INTERNAL int tlog_leaf_pipeline(PyObject *seq, Py_ssize_t n, int shared_list,
                                     unsigned char *dst, int t);
#endif

#endif /* TLOG_BULK_LEAVES_H */
