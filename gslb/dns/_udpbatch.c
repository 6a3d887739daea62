/* Batched UDP for the DNS server: recvmmsg/sendmmsg over preallocated buffers (Linux).
 *
 * The C twin of gslb/dns/udpbatch_py.py; gslb/dns/udpbatch.py picks one at import time and both pass
 * the same tests (tests/test_dns_udp_batch.py). One `Batch` object per UDP socket:
 *
 *     batch = Batch(fd, count)
 *     queries = batch.recv()          # [(data: bytes, client_ip: str), ...], [] when nothing is waiting
 *     batch.send(replies)             # replies[i] (bytes or None) goes to the sender of queries[i]
 *
 * recv() takes up to `count` datagrams with one recvmmsg call; send() answers them with one sendmmsg
 * call (more only when the kernel takes part of the batch). The senders' addresses stay in the object
 * between the two calls, so no address tuple is built per packet. Built at install as an optional
 * extension (setup.py): without a compiler, or off Linux, the pure-Python twin is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define SLOT_SIZE 65536      /* a whole UDP payload: the asyncio path never truncates a query either */
#define MAX_COUNT 1024

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned int count;
    unsigned int received;   /* datagrams of the last recv() whose senders are kept for send() */
    char *buffers;           /* count x SLOT_SIZE; pages are touched only as far as datagrams reach */
    struct sockaddr_storage *names;
    struct iovec *iov;
    struct mmsghdr *msgs;
    struct iovec *out_iov;
    struct mmsghdr *out_msgs;
} Batch;

static void Batch_free(Batch *self) {
    PyMem_RawFree(self->buffers);
    PyMem_RawFree(self->names);
    PyMem_RawFree(self->iov);
    PyMem_RawFree(self->msgs);
    PyMem_RawFree(self->out_iov);
    PyMem_RawFree(self->out_msgs);
    self->buffers = NULL;
    self->names = NULL;
    self->iov = NULL;
    self->msgs = NULL;
    self->out_iov = NULL;
    self->out_msgs = NULL;
    self->received = 0;
}

static void Batch_dealloc(Batch *self) {
    Batch_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Batch_init(Batch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "count", NULL};
    int fd;
    unsigned int count = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|I", kwlist, &fd, &count))
        return -1;
    if (count < 1 || count > MAX_COUNT) {
        PyErr_Format(PyExc_ValueError, "count must be 1 to %d, not %u", MAX_COUNT, count);
        return -1;
    }
    Batch_free(self);           /* __init__ called again: no leak */
    self->fd = fd;
    self->count = count;
    self->received = 0;
    self->buffers = PyMem_RawMalloc((size_t)count * SLOT_SIZE);
    self->names = PyMem_RawCalloc(count, sizeof(struct sockaddr_storage));
    self->iov = PyMem_RawCalloc(count, sizeof(struct iovec));
    self->msgs = PyMem_RawCalloc(count, sizeof(struct mmsghdr));
    self->out_iov = PyMem_RawCalloc(count, sizeof(struct iovec));
    self->out_msgs = PyMem_RawCalloc(count, sizeof(struct mmsghdr));
    if (!self->buffers || !self->names || !self->iov || !self->msgs || !self->out_iov || !self->out_msgs) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The sender's address as text, like asyncio's addr[0] ("192.0.2.1", "2001:db8::1"). */
static PyObject *address_text(const struct sockaddr_storage *name) {
    char text[INET6_ADDRSTRLEN];
    const void *raw;
    if (name->ss_family == AF_INET)
        raw = &((const struct sockaddr_in *)name)->sin_addr;
    else if (name->ss_family == AF_INET6)
        raw = &((const struct sockaddr_in6 *)name)->sin6_addr;
    else
        return PyUnicode_FromString("?");
    if (inet_ntop(name->ss_family, raw, text, sizeof(text)) == NULL)
        return PyUnicode_FromString("?");
    return PyUnicode_FromString(text);
}

static PyObject *Batch_recv(Batch *self, PyObject *Py_UNUSED(ignored)) {
    unsigned int i;
    int n;
    if (self->buffers == NULL) {
        PyErr_SetString(PyExc_ValueError, "Batch is not initialised");
        return NULL;
    }
    for (i = 0; i < self->count; i++) {
        self->iov[i].iov_base = self->buffers + (size_t)i * SLOT_SIZE;
        self->iov[i].iov_len = SLOT_SIZE;
        memset(&self->msgs[i].msg_hdr, 0, sizeof(struct msghdr));
        self->msgs[i].msg_hdr.msg_name = &self->names[i];
        self->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        self->msgs[i].msg_hdr.msg_iov = &self->iov[i];
        self->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    self->received = 0;
    Py_BEGIN_ALLOW_THREADS
    do {
        n = recvmmsg(self->fd, self->msgs, self->count, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (i = 0; i < (unsigned int)n; i++) {
        PyObject *data = PyBytes_FromStringAndSize(self->iov[i].iov_base, self->msgs[i].msg_len);
        PyObject *ip = data ? address_text(&self->names[i]) : NULL;
        PyObject *pair = ip ? PyTuple_Pack(2, data, ip) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(ip);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    self->received = (unsigned int)n;
    return list;
}

/* Send replies[i] to the sender of the i-th datagram of the last recv(); None is skipped. Returns the
 * number sent. A destination the kernel refuses is skipped (as asyncio's sendto would log and go on);
 * a full send buffer (EAGAIN) drops the rest: DNS clients retry. */
static PyObject *Batch_send(Batch *self, PyObject *replies) {
    PyObject *seq = PySequence_Fast(replies, "replies must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(seq);
    if ((size_t)size > self->received) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%zd replies for %u queries", size, self->received);
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    unsigned int k = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = items[i];
        if (item == Py_None)
            continue;
        if (!PyBytes_Check(item)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "a reply must be bytes or None");
            return NULL;
        }
        /* The bytes objects stay alive in `seq` until sendmmsg is done. */
        self->out_iov[k].iov_base = PyBytes_AS_STRING(item);
        self->out_iov[k].iov_len = (size_t)PyBytes_GET_SIZE(item);
        memset(&self->out_msgs[k].msg_hdr, 0, sizeof(struct msghdr));
        self->out_msgs[k].msg_hdr.msg_name = &self->names[i];
        self->out_msgs[k].msg_hdr.msg_namelen = self->msgs[i].msg_hdr.msg_namelen;
        self->out_msgs[k].msg_hdr.msg_iov = &self->out_iov[k];
        self->out_msgs[k].msg_hdr.msg_iovlen = 1;
        k++;
    }
    unsigned int done = 0, sent = 0;
    int n = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    while (done < k) {
        n = sendmmsg(self->fd, self->out_msgs + done, k - done, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
                break;            /* the socket is full: the rest is dropped */
            done++;               /* this destination was refused: skip it */
            continue;
        }
        done += (unsigned int)n;
        sent += (unsigned int)n;
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(seq);
    return PyLong_FromUnsignedLong(sent);
}

static PyObject *Batch_fileno(Batch *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLong(self->fd);
}

static PyMethodDef Batch_methods[] = {
    {"recv", (PyCFunction)Batch_recv, METH_NOARGS,
     "recv() -> [(data, client_ip), ...]: up to `count` waiting datagrams, [] when none is waiting."},
    {"send", (PyCFunction)Batch_send, METH_O,
     "send(replies) -> int: replies[i] (bytes or None) to the sender of the i-th datagram of recv()."},
    {"fileno", (PyCFunction)Batch_fileno, METH_NOARGS, "The socket's descriptor."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Batch_members[] = {
    {"count", T_UINT, offsetof(Batch, count), READONLY, "Datagrams per recv()."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gslb.dns._udpbatch.Batch",
    .tp_doc = "Batch(fd, count=64): recvmmsg/sendmmsg on a non-blocking UDP socket.",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Batch_init,
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_methods = Batch_methods,
    .tp_members = Batch_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_udpbatch", "recvmmsg/sendmmsg batches for the DNS server (C twin).", -1, NULL,
};

PyMODINIT_FUNC PyInit__udpbatch(void) {
    if (PyType_Ready(&BatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&BatchType);
    if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(&BatchType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
