/*
 * Entries gathered for leaf hashing without the GIL: see _bulk_leaves.h.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_bulk_leaves.h"

/* A threaded leaf_hashes gathers PAR_CHUNK_ITEMS entries per chunk (see
 * tlog_leaf_pipeline): larger chunks than alone, since the gathering of one
 * overlaps the hashing of the previous (measured at 10^6 entries: 1024
 * entries 125 ms, 8192 and more ~100 ms). */
#define PAR_CHUNK_ITEMS 8192

tlog_chunk *
tlog_chunk_new(Py_ssize_t cap)
{
    size_t item = sizeof(Py_buffer) + sizeof(void *) + sizeof(size_t) + sizeof(PyObject *);
    tlog_chunk *ch = PyMem_RawMalloc(sizeof *ch + item * (size_t)cap);
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

void
tlog_chunk_release(tlog_chunk *ch)
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
chunk_add(tlog_chunk *ch, Py_ssize_t k, PyObject *item, int shared_list, Py_ssize_t i)
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
Py_ssize_t
tlog_chunk_gather(tlog_chunk *ch, PyObject *seq, Py_ssize_t i, Py_ssize_t n, int shared_list,
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
    const tlog_chunk *cur;
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
        const tlog_chunk *ch = p->cur;
        unsigned char *dst = p->dst + HASH * start;
        p->next += k;
        pthread_mutex_unlock(&p->mu);
        tlog_hash_leaves(ch->ptr + start, ch->len + start, k, dst);
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
pipe_publish(pipeline *p, const tlog_chunk *ch, size_t count, unsigned char *dst)
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
int
tlog_leaf_pipeline(PyObject *seq, Py_ssize_t n, int shared_list, unsigned char *dst, int t)
{
    tlog_chunk *ch[2] = {tlog_chunk_new(PAR_CHUNK_ITEMS), tlog_chunk_new(PAR_CHUNK_ITEMS)};
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
            count = tlog_chunk_gather(ch[nxt], seq, i, n, shared_list, &bytes);
            if (count < 0) {
                tlog_chunk_release(ch[nxt]); /* never published */
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
            tlog_chunk_release(ch[cur]);
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
