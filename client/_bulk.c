/*
 * tlog_client._bulk: compiled backend of tlog_client.bulk (SPEC §3.1, §8).
 *
 * RFC 6962 §2.1 hashing over whole levels:
 *   leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right).
 * A level is a bytes-like object of consecutive 32-byte hashes.
 *
 * This file is the Python module: buffers and entries in, bytes out, the
 * settings, the set-up at import. Entries are gathered for hashing without
 * the GIL by _bulk_leaves.c; the hashing is in _bulk_merkle.c (RFC 6962
 * messages, levels, threads) over the SHA-256 compression of _bulk_sha256.c
 * (FIPS 180-4; SHA-NI or libcrypto).
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

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bulk_leaves.h"
#include "_bulk_merkle.h"
#include "_bulk_sha256.h"

/* Release the GIL only for work worth more than a GIL round trip (a waiting
 * thread may hold it for up to the switch interval). */
#define NOGIL_MIN_BYTES (64 * 1024)
static const unsigned char EMPTY_ROOT[HASH] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
    0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

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
        tlog_par_hash_pairs(view.buf, pairs, dst);
        Py_END_ALLOW_THREADS
    }
    else {
        tlog_hash_pairs(view.buf, pairs, dst);
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
        tlog_par_root_hash(view.buf, n, work, root);
        Py_END_ALLOW_THREADS
    }
    else {
        tlog_root_hash(view.buf, n, work, root);
    }
    PyMem_RawFree(work);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)root, HASH);
}

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
    tlog_chunk *ch = NULL;

    if ((size_t)n > (size_t)PY_SSIZE_T_MAX / HASH) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * HASH);
    if (result == NULL || n == 0)
        goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
#if defined(HAVE_PTHREADS)
    int t = tlog_threads_for((size_t)n);
    if (t > 1) {
        if (tlog_leaf_pipeline(seq, n, shared_list, dst, t) < 0)
            Py_CLEAR(result);
        goto done;
    }
#endif
    ch = tlog_chunk_new(n < CHUNK_ITEMS ? n : CHUNK_ITEMS);
    if (ch == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n;) {
        size_t bytes;
        Py_ssize_t count = tlog_chunk_gather(ch, seq, i, n, shared_list, &bytes);
        if (count < 0) {
            tlog_chunk_release(ch);
            Py_CLEAR(result);
            goto done;
        }
        if (bytes >= NOGIL_MIN_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            tlog_hash_leaves(ch->ptr, ch->len, (size_t)count, dst + HASH * i);
            Py_END_ALLOW_THREADS
        }
        else {
            tlog_hash_leaves(ch->ptr, ch->len, (size_t)count, dst + HASH * i);
        }
        tlog_chunk_release(ch);
        i += count;
    }

done:
    PyMem_RawFree(ch);
    Py_DECREF(seq);
    return result;
}

/* The 32 bytes of a bytes (not a subclass) or bytearray object of exactly
 * that size, else NULL with ValueError set (as verify.py's checks). */
static const unsigned char *
hash_bytes(PyObject *obj)
{
    if (PyBytes_CheckExact(obj) && PyBytes_GET_SIZE(obj) == HASH)
        return (const unsigned char *)PyBytes_AS_STRING(obj);
    if (PyByteArray_Check(obj) && PyByteArray_GET_SIZE(obj) == HASH)
        return (const unsigned char *)PyByteArray_AS_STRING(obj);
    PyErr_Format(PyExc_ValueError, "hash is not %d bytes", HASH);
    return NULL;
}

PyDoc_STRVAR(fold_path_doc,
"fold_path(seed, proof, index, inner, right_only) -> bytes\n\n"
"Fold the hashes of a proof path (a list or tuple of 32-byte bytes) into\n"
"seed: step k is SHA-256(0x01 || proof[k] || seed) if k >= inner or bit k\n"
"of index is 1, else SHA-256(0x01 || seed || proof[k]) (no step if\n"
"right_only). ValueError for a hash that is not 32 bytes; OverflowError\n"
"for an index outside 0..2**64-1.");

static PyObject *
fold_path(PyObject *module, PyObject *args)
{
    PyObject *seed_obj, *proof_obj, *index_obj;
    Py_ssize_t inner;
    int right_only;
    if (!PyArg_ParseTuple(args, "OOO!np:fold_path", &seed_obj, &proof_obj, &PyLong_Type,
                          &index_obj, &inner, &right_only))
        return NULL;
    if (!PyList_Check(proof_obj) && !PyTuple_Check(proof_obj))
        return PyErr_Format(PyExc_TypeError, "proof must be a list or tuple");
    /* OverflowError for a negative index or one of more than 64 bits. */
    unsigned long long index = PyLong_AsUnsignedLongLong(index_obj);
    if (index == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned char seed[HASH];
    const unsigned char *p = hash_bytes(seed_obj);
    if (p == NULL)
        return NULL;
    memcpy(seed, p, HASH);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(proof_obj);
    const unsigned char *local[128];
    const unsigned char **ptrs = n <= 128 ? local : PyMem_Malloc(sizeof *ptrs * (size_t)n);
    if (ptrs == NULL)
        return PyErr_NoMemory();
    PyObject **items = PySequence_Fast_ITEMS(proof_obj);
    for (Py_ssize_t k = 0; k < n; k++) {
        if ((ptrs[k] = hash_bytes(items[k])) == NULL) {
            if (ptrs != local)
                PyMem_Free(ptrs);
            return NULL;
        }
    }
    tlog_fold_path(seed, ptrs, (size_t)n, index, inner < 0 ? 0 : (size_t)inner, right_only);
    if (ptrs != local)
        PyMem_Free(ptrs);
    return PyBytes_FromStringAndSize((const char *)seed, HASH);
}

static PyObject *
config_dict(void)
{
    return Py_BuildValue("{s:i,s:O,s:O}", "threads", tlog_threads(),
                         "sha_ni", tlog_sha_ni_selected() ? Py_True : Py_False,
                         "sha_ni_available", tlog_sha_ni_available() ? Py_True : Py_False);
}

PyDoc_STRVAR(configure_doc,
"configure(*, threads=None, sha_ni=None) -> dict\n\n"
"Set the number of threads used for large inputs (1 to 16; 0 for the\n"
"default, min(2, usable CPUs)) and whether to use this module's SHA-NI\n"
"code where the CPU has it (else libcrypto's SHA-256). None leaves a\n"
"setting as it is. Returns the settings in force: threads, sha_ni and\n"
"sha_ni_available. Process-wide; results never depend on them.");

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
        tlog_set_threads(t == 0 ? tlog_default_threads() : (int)t);
    }
    if (sha_ni != Py_None) {
        int on = PyObject_IsTrue(sha_ni);
        if (on < 0)
            return NULL;
        tlog_select_sha_ni(on);
    }
    return config_dict();
}

static PyMethodDef bulk_methods[] = {
    {"leaf_hashes", leaf_hashes, METH_O, leaf_hashes_doc},
    {"parent_level", parent_level, METH_O, parent_level_doc},
    {"root_of_level", root_of_level, METH_O, root_of_level_doc},
    {"fold_path", fold_path, METH_VARARGS, fold_path_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ set-up */

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
    return tlog_default_threads();
}

static int
bulk_exec(PyObject *module)
{
    tlog_select_sha_ni(0);
    if (!tlog_self_check()) {
        PyErr_SetString(PyExc_ImportError, "libcrypto SHA-256 self-check failed");
        return -1;
    }
    tlog_sha_ni_probe(tlog_self_check);
    const char *env = getenv("TLOG_BULK_SHA_NI");
    tlog_select_sha_ni(!(env != NULL && strcmp(env, "0") == 0));
    tlog_set_threads(env_threads());
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
