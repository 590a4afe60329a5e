# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: libraries = uring
"""Many sockets written with one system call: liburing's io_uring, for server.send_ring (which builds and loads this).

Rules: every send is non-blocking (MSG_DONTWAIT: a full socket answers -EAGAIN at once, it is never waited on) and
raises no SIGPIPE (MSG_NOSIGNAL). `send_each` submits the sends in the order given and returns once all are
complete, with each one's result where `write(2)` would give it: the bytes written (possibly fewer than the
frame's), or minus the errno. Two sends to one socket in one call would race each other's partial writes: the
caller gives each socket at most one frame per call.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport strerror

cdef extern from "sys/socket.h":
    int MSG_DONTWAIT
    int MSG_NOSIGNAL

cdef extern from "liburing.h" nogil:
    struct io_uring:
        pass
    struct io_uring_sqe:
        pass
    struct io_uring_cqe:
        unsigned long long user_data
        int res
    unsigned IORING_SETUP_SUBMIT_ALL
    int io_uring_queue_init(unsigned entries, io_uring *ring, unsigned flags)
    void io_uring_queue_exit(io_uring *ring)
    io_uring_sqe *io_uring_get_sqe(io_uring *ring)
    void io_uring_prep_send(io_uring_sqe *sqe, int sockfd, const void *buf, size_t len, int flags)
    void io_uring_sqe_set_data64(io_uring_sqe *sqe, unsigned long long data)
    int io_uring_submit_and_wait(io_uring *ring, unsigned wait_nr)
    unsigned io_uring_peek_batch_cqe(io_uring *ring, io_uring_cqe **cqes, unsigned count)
    void io_uring_cq_advance(io_uring *ring, unsigned nr)

DEF RING_ENTRIES = 1024


cdef class SendRing:
    """One io_uring of the process, for sends only (see the module's rules).

    Raises:
        OSError: if the kernel refuses io_uring (not built in, disabled by sysctl, or forbidden by a sandbox).
    """

    cdef io_uring ring
    cdef bint ready
    cdef io_uring_cqe *completions[RING_ENTRIES]

    def __cinit__(self):
        # every send of a batch submitted even if one fails as it is submitted (Linux 5.18): `send_each` waits for
        # as many completions as it submitted sends
        cdef int error = io_uring_queue_init(RING_ENTRIES, &self.ring, IORING_SETUP_SUBMIT_ALL)
        if error < 0:
            raise OSError(-error, strerror(-error).decode())
        self.ready = True

    def __dealloc__(self):
        if self.ready:
            io_uring_queue_exit(&self.ring)

    def send_each(self, list fds, list frames, list results):
        """Send `frames[i]` (bytes) to socket `fds[i]` for every i, setting `results[i]` (a list as long) to the
        bytes written or -errno.

        Raises:
            OSError: if submitting failed altogether (not one send's failure: those are results).
        """
        cdef Py_ssize_t total = len(fds), start = 0, count, index
        cdef io_uring_sqe *sqe
        cdef unsigned completed, ready, k
        cdef int submitted
        cdef bytes frame
        if len(frames) != total or len(results) != total:
            raise ValueError("fds, frames and results must be as long as each other")
        while start < total:
            count = min(total - start, RING_ENTRIES)
            for index in range(start, start + count):
                frame = frames[index]
                sqe = io_uring_get_sqe(&self.ring)
                io_uring_prep_send(
                    sqe, <int>fds[index], PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), MSG_DONTWAIT | MSG_NOSIGNAL
                )
                io_uring_sqe_set_data64(sqe, <unsigned long long>index)
            with nogil:
                submitted = io_uring_submit_and_wait(&self.ring, <unsigned>count)
            if submitted < 0:
                raise OSError(-submitted, strerror(-submitted).decode())
            if submitted != count:  # cannot happen with IORING_SETUP_SUBMIT_ALL; never wait for what was not sent
                raise OSError(f"io_uring took {submitted} of {count} sends")
            completed = 0
            while completed < <unsigned>count:
                ready = io_uring_peek_batch_cqe(&self.ring, self.completions, RING_ENTRIES)
                for k in range(ready):
                    results[self.completions[k].user_data] = self.completions[k].res
                io_uring_cq_advance(&self.ring, ready)
                completed += ready
            start += count
