/* Fused |S|^2 + multilook kernel for labkit.prep: one pass over cache-resident blocks.
 *
 * Bitwise the same as the NumPy path (labkit.prep._Kernel.run, i.e.
 * multilook(intensity(slc), looks)):
 *   I = re*re + im*im in float32, each product rounded (built with -ffp-contract=off:
 *   no FMA); I == 0 -> NaN; sums in float64, azimuth first (((a0+a1)+a2)+a3 per column),
 *   then range (((s0+s1)+s2)+s3); / (laz*lrg); cast to float32; not finite -> NaN.
 * The GIL is released while it runs, so threads multilook blocks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifndef _WIN32
#include <unistd.h>
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
/* one build for every x86-64 CPU, plus an AVX2 clone picked at load time (same IEEE ops) */
#define KERNEL_TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL_TARGETS
#endif

#define CHUNK 1024            /* samples per column chunk: the accumulator stays in L1 */
#define GROUP_BYTES (1 << 19) /* SLC bytes read at a time by read_multilook: stays in L2 */
#define NAN_BITS 0x7fc00000u  /* the NaN NumPy writes (np.float32(np.nan)) */

/* |S|^2 of sample j of interleaved (re, im) floats; exactly 0 -> NaN (a bit mask rather
 * than a branch, so that gcc vectorises the loops using it) */
static inline float
intensity(const float *p, Py_ssize_t j)
{
    float re = p[2 * j], im = p[2 * j + 1];
    float v = re * re + im * im; /* two rounded products and a rounded sum: no FMA */
    uint32_t b;

    memcpy(&b, &v, sizeof b);
    b |= (uint32_t)(-(int32_t)(v == 0.0f)) & NAN_BITS;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* One column chunk of one output row: `n` output cells from the `laz` lines starting at
 * `line` (consecutive lines `stride` floats apart), into `out`. */
KERNEL_TARGETS static void
chunk_row(const float *line, Py_ssize_t stride, Py_ssize_t n, int laz, int lrg,
          double *restrict acc, float *restrict out)
{
    const Py_ssize_t m = n * lrg; /* samples of the chunk */
    const double div = (double)laz * (double)lrg;
    const uint32_t nan_bits = NAN_BITS;
    float nan;
    Py_ssize_t j;
    int k, r;

    memcpy(&nan, &nan_bits, sizeof nan);
    for (j = 0; j < m; j++) /* azimuth: (((a0 + a1) + a2) + a3) per column, in float64 */
        acc[j] = (double)intensity(line, j);
    for (k = 1; k < laz; k++) {
        const float *p = line + (Py_ssize_t)k * stride;
        for (j = 0; j < m; j++)
            acc[j] = acc[j] + (double)intensity(p, j);
    }
    for (j = 0; j < n; j++) { /* range: (((s0 + s1) + s2) + s3), then the mean */
        double s = acc[j * lrg];
        for (r = 1; r < lrg; r++)
            s = s + acc[j * lrg + r];
        float o = (float)(s / div);
        out[j] = isfinite(o) ? o : nan;
    }
}

/* rows x cols cells from src lines `stride` complex samples apart, from sample col0 */
static void
multilook_block(const float *src, Py_ssize_t stride, Py_ssize_t col0, Py_ssize_t rows,
                Py_ssize_t cols, int laz, int lrg, float *out, double *acc)
{
    const Py_ssize_t per = CHUNK / lrg > 0 ? CHUNK / lrg : 1; /* cells per chunk */
    Py_ssize_t i, c;

    for (i = 0; i < rows; i++) {
        const float *line = src + 2 * (i * laz * stride + col0);
        for (c = 0; c < cols; c += per) {
            Py_ssize_t n = cols - c < per ? cols - c : per;
            chunk_row(line + 2 * c * lrg, 2 * stride, n, laz, lrg, acc, out + i * cols + c);
        }
    }
}

PyDoc_STRVAR(multilook_doc,
"multilook(src, out, rows, cols, stride, col0, laz, lrg)\n--\n\n"
"Fused |S|^2 + multilook of one block, bitwise equal to the NumPy path.\n\n"
"src: buffer of rows*laz lines of `stride` complex64 samples (native byte order);\n"
"out: writable buffer of rows*cols float32 (row-major). Cell (i, c) averages lines\n"
"i*laz .. i*laz+laz-1, samples col0 + c*lrg .. + lrg-1. Releases the GIL.");

static PyObject *
multilook(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer src, out;
    Py_ssize_t rows, cols, stride, col0;
    int laz, lrg;
    double *acc = NULL;
    PyObject *res = NULL;

    if (!PyArg_ParseTuple(args, "y*w*nnnnii:multilook", &src, &out, &rows, &cols, &stride,
                          &col0, &laz, &lrg))
        return NULL;
    if (rows < 0 || cols < 0 || col0 < 0 || laz < 1 || lrg < 1 || stride < 0
        || cols > (stride - col0) / lrg) {
        PyErr_SetString(PyExc_ValueError, "multilook needs rows, cols, col0 >= 0, looks >= 1 "
                        "and col0 + cols*lrg <= stride");
        goto done;
    }
    if (rows > 0 && cols > 0) {
        const Py_ssize_t per = CHUNK / lrg > 0 ? CHUNK / lrg : 1;
        Py_ssize_t need = ((rows * laz - 1) * stride + col0 + cols * lrg) * 8;
        if (src.len < need || out.len < rows * cols * 4) {
            PyErr_Format(PyExc_ValueError, "multilook buffers too small: src %zd bytes "
                         "(need %zd), out %zd (need %zd)", src.len, need, out.len,
                         rows * cols * 4);
            goto done;
        }
        if (((uintptr_t)src.buf | (uintptr_t)out.buf) % sizeof(float)) {
            PyErr_SetString(PyExc_ValueError, "multilook buffers must be 4-byte aligned");
            goto done;
        }
        acc = PyMem_RawMalloc((per < cols ? per : cols) * lrg * sizeof(double));
        if (acc == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        multilook_block(src.buf, stride, col0, rows, cols, laz, lrg, out.buf, acc);
        Py_END_ALLOW_THREADS
    }
    res = Py_NewRef(Py_None);
done:
    PyMem_RawFree(acc);
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    return res;
}

#ifndef _WIN32
/* pread exactly `len` bytes at `off`: 0, or -1 with errno set (EIO-like errors), or 1 at
 * the end of the file */
static int
read_full(int fd, char *buf, Py_ssize_t len, long long off, long long *where)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, (size_t)len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *where = off;
            return -1;
        }
        if (n == 0) {
            *where = off;
            return 1;
        }
        buf += n;
        len -= n;
        off += n;
    }
    return 0;
}

PyDoc_STRVAR(read_multilook_doc,
"read_multilook(fd, offset, line_bytes, out, rows, cols, col0, laz, lrg)\n--\n\n"
"Read raw complex64 lines (native byte order) from file descriptor fd with pread and\n"
"multilook them as multilook() does, in groups of lines that stay in the L2 cache.\n\n"
"Line k (0 <= k < rows*laz) starts at byte offset + k*line_bytes; cells start at sample\n"
"col0. out: writable buffer of rows*cols float32. Releases the GIL for the whole call.\n"
"Raises OSError on a read error, EOFError if the file ends before the last line.");

static PyObject *
read_multilook(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer out;
    int fd, laz, lrg, err = 0, saved_errno = 0, contiguous;
    long long offset, where = 0;
    Py_ssize_t line_bytes, rows, cols, col0, seg, per_row, group, i;
    char *buf = NULL;
    double *acc = NULL;
    PyObject *res = NULL;

    if (!PyArg_ParseTuple(args, "iLnw*nnnii:read_multilook", &fd, &offset, &line_bytes, &out,
                          &rows, &cols, &col0, &laz, &lrg))
        return NULL;
    if (rows < 0 || cols < 0 || col0 < 0 || laz < 1 || lrg < 1 || offset < 0
        || line_bytes < 8 || cols > (line_bytes / 8 - col0) / lrg) {
        PyErr_SetString(PyExc_ValueError, "read_multilook needs rows, cols, col0, offset >= 0, "
                        "looks >= 1 and 8*(col0 + cols*lrg) <= line_bytes");
        goto done;
    }
    if (rows == 0 || cols == 0)
        goto ok;
    if (out.len < rows * cols * 4 || (uintptr_t)out.buf % sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "read_multilook output: %zd bytes (need %zd, 4-byte "
                     "aligned)", out.len, rows * cols * 4);
        goto done;
    }
    seg = cols * lrg * 8; /* bytes used per line */
    /* wide crops: one read per group, gaps included; narrow ones: one read per line */
    contiguous = line_bytes % 8 == 0 && 2 * seg >= line_bytes;
    per_row = (contiguous ? line_bytes : seg) * laz;
    group = GROUP_BYTES / per_row > 0 ? GROUP_BYTES / per_row : 1;
    if (group > rows)
        group = rows;
    {
        const Py_ssize_t per = CHUNK / lrg > 0 ? CHUNK / lrg : 1;
        buf = PyMem_RawMalloc(contiguous ? (group * laz - 1) * line_bytes + seg
                                         : group * laz * seg);
        acc = PyMem_RawMalloc((per < cols ? per : cols) * lrg * sizeof(double));
    }
    if (buf == NULL || acc == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < rows && !err; i += group) {
        Py_ssize_t n = rows - i < group ? rows - i : group, k;
        long long first = offset + (long long)i * laz * line_bytes + (long long)col0 * 8;
        float *dst = (float *)out.buf + i * cols;
        if (contiguous) {
            err = read_full(fd, buf, (n * laz - 1) * line_bytes + seg, first, &where);
            if (!err)
                multilook_block((float *)buf, line_bytes / 8, 0, n, cols, laz, lrg, dst, acc);
        } else {
            for (k = 0; k < n * laz && !err; k++)
                err = read_full(fd, buf + k * seg, seg, first + (long long)k * line_bytes,
                                &where);
            if (!err)
                multilook_block((float *)buf, cols * lrg, 0, n, cols, laz, lrg, dst, acc);
        }
    }
    saved_errno = errno;
    Py_END_ALLOW_THREADS
    if (err < 0) {
        errno = saved_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (err > 0) {
        PyErr_Format(PyExc_EOFError, "the file ends at byte %lld, before the last line",
                     where);
        goto done;
    }
ok:
    res = Py_NewRef(Py_None);
done:
    PyMem_RawFree(buf);
    PyMem_RawFree(acc);
    PyBuffer_Release(&out);
    return res;
}
#endif /* _WIN32 */

static PyMethodDef methods[] = {
    {"multilook", multilook, METH_VARARGS, multilook_doc},
#ifndef _WIN32
    {"read_multilook", read_multilook, METH_VARARGS, read_multilook_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_prepkernel",
    "Fused |S|^2 + multilook kernel for labkit.prep (GIL released).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__prepkernel(void)
{
    return PyModule_Create(&module);
}
