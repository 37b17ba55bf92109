/* SPDX-License-Identifier: MIT */
/*
 * The blkcopy Python module: libblkcopy's devices, copies and jobs.
 *
 *   import blkcopy
 *   n = blkcopy.copy("/dev/nvme0n1", "/dev/nvme0n1", [(0, 1 << 20)], dst_offset=8 << 20)
 *
 *   with blkcopy.open("/dev/sdb") as src, blkcopy.open("/dev/sdc", write=True) as dst:
 *       job = blkcopy.submit(src, dst, rate=200 << 20)
 *       for p in job:                  # progress, about every 100 ms
 *           print(p.done, p.total)
 *       n = job.finish()
 *
 * Errors are OSError with the errno and the library's words (and the
 * device's own account, blkcopy_dev_error(), when it has one).  Blocking
 * calls release the GIL; a signal (Ctrl-C) cancels a copy in progress and
 * raises once it has stopped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blkcopy.h>

#define POLL_MS 100	/* progress callbacks and signal checks while a copy runs */

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

/* OSError(errno, "words: the device's account") for a -errno from the library. */
static PyObject *raise_err(int err, const struct blkcopy_dev *a, const struct blkcopy_dev *b)
{
	const char *why = "";

	if (a && *blkcopy_dev_error(a))
		why = blkcopy_dev_error(a);
	else if (b && *blkcopy_dev_error(b))
		why = blkcopy_dev_error(b);
	PyObject *msg = PyUnicode_FromFormat("%s%s%s", blkcopy_strerror(err), *why ? ": " : "", why);
	if (msg) {
		PyObject *args = Py_BuildValue("(iO)", -err, msg);

		if (args) {
			PyErr_SetObject(PyExc_OSError, args);
			Py_DECREF(args);
		}
		Py_DECREF(msg);
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Device                                                                   */

typedef struct {
	PyObject_HEAD
	struct blkcopy_dev *dev;
	PyObject *path;
} DeviceObject;

static PyTypeObject DeviceType;

static int device_init(DeviceObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "path", "write", "exclusive", NULL };
	PyObject *path_obj;
	int write = 0, excl = 0, ret;
	unsigned int flags = BLKCOPY_OPEN_READ;
	struct blkcopy_dev *dev = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|pp", kwlist, PyUnicode_FSConverter,
					 &path_obj, &write, &excl))
		return -1;
	if (write)
		flags |= BLKCOPY_OPEN_WRITE;
	if (excl)
		flags |= BLKCOPY_OPEN_EXCL;
	const char *path = PyBytes_AS_STRING(path_obj);
	Py_BEGIN_ALLOW_THREADS
	ret = blkcopy_open(path, flags, &dev);
	Py_END_ALLOW_THREADS
	if (ret) {
		/*
		 * The library's account of the open, else the errno's own words
		 * (blkcopy_strerror() words a request's errors: ENXIO is a range there).
		 */
		const char *why = blkcopy_open_error();
		PyObject *msg = PyUnicode_FromString(*why ? why : strerror(-ret));

		PyObject *name = PyUnicode_DecodeFSDefault(path);
		if (msg && name) {
			PyObject *e = PyObject_CallFunction(PyExc_OSError, "iOO", -ret, msg, name);

			if (e) {
				PyErr_SetObject(PyExc_OSError, e);
				Py_DECREF(e);
			}
		}
		Py_XDECREF(msg);
		Py_XDECREF(name);
		Py_DECREF(path_obj);
		return -1;
	}
	if (self->dev)
		blkcopy_close(self->dev);
	self->dev = dev;
	Py_XSETREF(self->path, PyUnicode_DecodeFSDefault(path));
	Py_DECREF(path_obj);
	return self->path ? 0 : -1;
}

static void device_dealloc(DeviceObject *self)
{
	if (self->dev)
		blkcopy_close(self->dev);
	Py_XDECREF(self->path);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct blkcopy_dev *device_of(DeviceObject *self)
{
	if (!self->dev)
		PyErr_SetString(PyExc_ValueError, "I/O operation on a closed blkcopy.Device");
	return self->dev;
}

static PyObject *device_close(DeviceObject *self, PyObject *unused)
{
	if (self->dev) {
		blkcopy_close(self->dev);
		self->dev = NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *device_enter(DeviceObject *self, PyObject *unused)
{
	if (!device_of(self))
		return NULL;
	Py_INCREF(self);
	return (PyObject *)self;
}

static PyObject *device_exit(DeviceObject *self, PyObject *args)
{
	return device_close(self, NULL);
}

static PyObject *limits_dict(const struct blkcopy_limits *l)
{
	return Py_BuildValue("{sIsKsIsK}", "copy_offload", l->copy_offload, "max_copy_sectors",
			     (unsigned long long)l->max_copy_sectors, "max_copy_nr_ranges",
			     l->max_copy_nr_ranges, "max_copy_range_sectors",
			     (unsigned long long)l->max_copy_range_sectors);
}

/* info(): what blkcopy limits shows, as a dict (the same names as limits --json). */
static PyObject *device_info(DeviceObject *self, PyObject *unused)
{
	struct blkcopy_dev *d = device_of(self);
	struct blkcopy_info i;
	int ret;

	if (!d)
		return NULL;
	ret = blkcopy_get_info(d, &i);
	if (ret)
		return raise_err(ret, d, NULL);
	PyObject *limits = limits_dict(&i.limits);
	if (!limits)
		return NULL;
	PyObject *r = Py_BuildValue(
		"{sssssssssIsKsOsOsKsIsIsOsssKsIsIsI}", "device", i.path, "kind",
		blkcopy_kind_name(i.kind), "backend", i.backend, "native_reason", i.native_reason,
		"logical_block_size", i.logical_block_size, "capacity",
		(unsigned long long)i.capacity, "read_only", i.read_only ? Py_True : Py_False,
		"partition", i.partition ? Py_True : Py_False, "partition_start",
		(unsigned long long)i.partition_start, "major", i.major, "minor", i.minor, "limits",
		limits, "zoned", blkcopy_zoned_name((enum blkcopy_zoned)i.zoned), "zone_size",
		(unsigned long long)i.zone_size, "nr_zones", i.nr_zones, "max_open_zones",
		i.max_open_zones, "max_active_zones", i.max_active_zones);
	Py_DECREF(limits);
	return r;
}

/* p2p(): the PCI function under the device and its P2P memory, or None off PCI. */
static PyObject *device_p2p(DeviceObject *self, PyObject *unused)
{
	struct blkcopy_dev *d = device_of(self);
	struct blkcopy_p2p_info p;
	int ret;

	if (!d)
		return NULL;
	ret = blkcopy_dev_p2p(d, &p);
	if (ret == -ENODEV)
		Py_RETURN_NONE;
	if (ret)
		return raise_err(ret, d, NULL);
	return Py_BuildValue("{sssssOsOsKsK}", "pci", p.pci, "driver", p.driver, "memory",
			     p.has_memory ? Py_True : Py_False, "published",
			     p.published ? Py_True : Py_False, "size", (unsigned long long)p.size,
			     "available", (unsigned long long)p.available);
}

static PyObject *device_set_copy_offload(DeviceObject *self, PyObject *arg)
{
	struct blkcopy_dev *d = device_of(self);
	int enable = PyObject_IsTrue(arg);

	if (!d || enable < 0)
		return NULL;
	const int ret = blkcopy_set_copy_offload(d, enable);
	if (ret)
		return raise_err(ret, d, NULL);
	Py_RETURN_NONE;
}

static PyObject *device_flush(DeviceObject *self, PyObject *unused)
{
	struct blkcopy_dev *d = device_of(self);
	int ret;

	if (!d)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	ret = blkcopy_flush(d);
	Py_END_ALLOW_THREADS
	if (ret)
		return raise_err(ret, d, NULL);
	Py_RETURN_NONE;
}

static PyObject *device_error(DeviceObject *self, PyObject *unused)
{
	struct blkcopy_dev *d = device_of(self);

	return d ? PyUnicode_FromString(blkcopy_dev_error(d)) : NULL;
}

static PyObject *device_repr(DeviceObject *self)
{
	return PyUnicode_FromFormat("<blkcopy.Device %R%s>", self->path ? self->path : Py_None,
				    self->dev ? "" : " (closed)");
}

static PyObject *device_closed(DeviceObject *self, void *unused)
{
	return PyBool_FromLong(!self->dev);
}

static PyMethodDef device_methods[] = {
	{ "close", (PyCFunction)device_close, METH_NOARGS, "Close the device (its jobs must be finished)." },
	{ "info", (PyCFunction)device_info, METH_NOARGS,
	  "Geometry, backend and copy limits, as blkcopy limits --json shows them." },
	{ "p2p", (PyCFunction)device_p2p, METH_NOARGS,
	  "The PCI function under the device and its peer-to-peer memory, or None." },
	{ "set_copy_offload", (PyCFunction)device_set_copy_offload, METH_O,
	  "Allow (True) or forbid (False) native copy on this device." },
	{ "flush", (PyCFunction)device_flush, METH_NOARGS, "Make what was written durable." },
	{ "error", (PyCFunction)device_error, METH_NOARGS,
	  "The device's own account of the last failure on it, or ''." },
	{ "__enter__", (PyCFunction)device_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)device_exit, METH_VARARGS, NULL },
	{ NULL },
};

static PyMemberDef device_members[] = {
	{ "path", T_OBJECT, offsetof(DeviceObject, path), READONLY, "The path as opened." },
	{ NULL },
};

static PyGetSetDef device_getset[] = {
	{ "closed", (getter)device_closed, NULL, "True once closed.", NULL },
	{ NULL },
};

static PyTypeObject DeviceType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "blkcopy.Device",
	.tp_doc = "Device(path, write=False, exclusive=False): a file, block device or iSCSI URL.",
	.tp_basicsize = sizeof(DeviceObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)device_init,
	.tp_dealloc = (destructor)device_dealloc,
	.tp_repr = (reprfunc)device_repr,
	.tp_methods = device_methods,
	.tp_members = device_members,
	.tp_getset = device_getset,
};

/* ------------------------------------------------------------------------ */
/* Requests: devices, ranges, options                                       */

struct request {
	PyObject *src;		/* a Device object (owned) */
	PyObject *dst[BLKCOPY_MAX_TARGETS];
	bool own_src, own_dst[BLKCOPY_MAX_TARGETS];	/* opened here from a path: closed when done */
	struct blkcopy_target t[BLKCOPY_MAX_TARGETS];
	size_t nr_dst;
	struct blkcopy_range *ranges;
	size_t nr;
	struct blkcopy_opts opts;
};

static void request_free(struct request *r)
{
	if (r->own_src && r->src)
		device_close((DeviceObject *)r->src, NULL);
	Py_CLEAR(r->src);
	for (size_t k = 0; k < r->nr_dst; k++) {
		if (r->own_dst[k] && r->dst[k])
			device_close((DeviceObject *)r->dst[k], NULL);
		Py_CLEAR(r->dst[k]);
	}
	r->nr_dst = 0;
	PyMem_Free(r->ranges);
	r->ranges = NULL;
}

/* A Device as given, or one opened from a path (then owned). */
static PyObject *as_device(PyObject *o, bool write, bool *owned)
{
	*owned = false;
	if (PyObject_TypeCheck(o, &DeviceType)) {
		if (!device_of((DeviceObject *)o))
			return NULL;
		Py_INCREF(o);
		return o;
	}
	*owned = true;
	return PyObject_CallFunction((PyObject *)&DeviceType, "Oi", o, write);
}

static int get_u64(PyObject *o, uint64_t *v, const char *what)
{
	unsigned long long x;

	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int", what);
		return -1;
	}
	x = PyLong_AsUnsignedLongLong(o);
	if (x == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Format(PyExc_ValueError, "%s must be an int from 0 to 2**64-1", what);
		return -1;
	}
	*v = x;
	return 0;
}

static int parse_ranges(PyObject *seq, struct request *r)
{
	if (seq == Py_None) {
		struct blkcopy_info i;
		const int ret = blkcopy_get_info(((DeviceObject *)r->src)->dev, &i);

		if (ret) {
			raise_err(ret, ((DeviceObject *)r->src)->dev, NULL);
			return -1;
		}
		r->ranges = PyMem_Malloc(sizeof(*r->ranges));
		if (!r->ranges) {
			PyErr_NoMemory();
			return -1;
		}
		r->ranges[0] = (struct blkcopy_range){ 0, i.capacity };
		r->nr = 1;
		return 0;
	}
	PyObject *fast = PySequence_Fast(seq, "ranges must be a sequence of (offset, length) pairs");
	if (!fast)
		return -1;
	const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
	r->ranges = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*r->ranges));
	if (!r->ranges) {
		Py_DECREF(fast);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t k = 0; k < n; k++) {
		PyObject *pair = PySequence_Fast_GET_ITEM(fast, k);

		if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
			PyErr_Format(PyExc_TypeError, "range %zd is not an (offset, length) pair", k);
			goto fail;
		}
		if (PySequence_Size(pair) != 2) {
			PyErr_Format(PyExc_ValueError, "range %zd is not an (offset, length) pair", k);
			goto fail;
		}
		PyObject *off = PySequence_GetItem(pair, 0), *len = PySequence_GetItem(pair, 1);
		const int bad = !off || !len || get_u64(off, &r->ranges[k].offset, "a range offset") ||
				get_u64(len, &r->ranges[k].len, "a range length");
		Py_XDECREF(off);
		Py_XDECREF(len);
		if (bad)
			goto fail;
	}
	r->nr = (size_t)n;
	Py_DECREF(fast);
	return 0;
fail:
	Py_DECREF(fast);
	return -1;
}

/* The CLI's options, by their names with "_" for "-". */
static int parse_options(PyObject *kw, struct blkcopy_opts *o)
{
	PyObject *key, *value;
	Py_ssize_t pos = 0;

	*o = (struct blkcopy_opts){ .flags = BLKCOPY_SYNC };
	if (!kw)
		return 0;
	while (PyDict_Next(kw, &pos, &key, &value)) {
		const char *k = PyUnicode_AsUTF8(key);
		static const struct { const char *name; unsigned int flag; bool set; } flags[] = {
			{ "no_offload", BLKCOPY_NOOFFLOAD, true },
			{ "no_emulation", BLKCOPY_NOEMULATION, true },
			{ "buffered", BLKCOPY_BUFFERED, true },
			{ "verify", BLKCOPY_VERIFY, true },
			{ "sync", BLKCOPY_SYNC, true },
			{ "no_sync", BLKCOPY_SYNC, false },
		};
		bool done = false;

		if (!k)
			return -1;
		for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && !done; i++) {
			if (strcmp(k, flags[i].name))
				continue;
			const int t = PyObject_IsTrue(value);
			if (t < 0)
				return -1;
			if (t == flags[i].set)
				o->flags |= flags[i].flag;
			else
				o->flags &= ~flags[i].flag;
			done = true;
		}
		if (done)
			continue;
		if (!strcmp(k, "p2p")) {
			if (value == Py_False || value == Py_None)
				continue;
			o->flags |= BLKCOPY_P2P;
			if (value == Py_True)
				continue;
			const char *s = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
			if (s && !strcmp(s, "auto"))
				o->p2p_memory = BLKCOPY_P2P_AUTO;
			else if (s && !strcmp(s, "src"))
				o->p2p_memory = BLKCOPY_P2P_SRC;
			else if (s && !strcmp(s, "dst"))
				o->p2p_memory = BLKCOPY_P2P_DST;
			else {
				PyErr_SetString(PyExc_ValueError, "p2p must be True, False, 'auto', 'src' or 'dst'");
				return -1;
			}
			continue;
		}
		uint64_t v;
		if (!strcmp(k, "queue_depth")) {
			if (get_u64(value, &v, k) || (v > UINT32_MAX && (PyErr_SetString(PyExc_ValueError, "queue_depth is too large"), 1)))
				return -1;
			o->queue_depth = (uint32_t)v;
		} else if (!strcmp(k, "max_inflight")) {
			if (get_u64(value, &o->max_inflight, k))
				return -1;
		} else if (!strcmp(k, "chunk_size")) {
			if (get_u64(value, &o->chunk_size, k))
				return -1;
		} else if (!strcmp(k, "native_min")) {
			/* As the CLI's --native-min: None or "auto" learnt, 0 every piece native. */
			if (value == Py_None || (PyUnicode_Check(value) && !strcmp(PyUnicode_AsUTF8(value), "auto"))) {
				o->native_min = 0;
				continue;
			}
			if (get_u64(value, &v, k))
				return -1;
			o->native_min = v ? v : 1;
		} else if (!strcmp(k, "rate")) {
			if (get_u64(value, &o->rate, k))
				return -1;
		} else {
			PyErr_Format(PyExc_TypeError, "unknown blkcopy option '%s'", k);
			return -1;
		}
	}
	return 0;
}

/* dst: one device (a path or a Device), or a list or tuple of them. */
static bool several(PyObject *o)
{
	return PyList_Check(o) || PyTuple_Check(o);
}

static int request_parse(PyObject *src, PyObject *dst, PyObject *ranges, PyObject *dst_off,
			 PyObject *kw, struct request *r)
{
	const Py_ssize_t n = several(dst) ? PySequence_Size(dst) : 1;

	memset(r, 0, sizeof(*r));
	if (parse_options(kw, &r->opts))
		return -1;
	if (n < 1 || n > BLKCOPY_MAX_TARGETS) {
		PyErr_Format(PyExc_ValueError, "dst: 1 to %u destinations", BLKCOPY_MAX_TARGETS);
		return -1;
	}
	if (several(dst_off) && PySequence_Size(dst_off) != n) {
		PyErr_SetString(PyExc_ValueError, "dst_offset: one for every destination, or one int for all");
		return -1;
	}
	r->src = as_device(src, false, &r->own_src);
	if (!r->src)
		return -1;
	for (Py_ssize_t k = 0; k < n; k++) {
		PyObject *d = several(dst) ? PySequence_GetItem(dst, k) : (Py_INCREF(dst), dst);
		PyObject *o = several(dst_off) ? PySequence_GetItem(dst_off, k) : (Py_INCREF(dst_off), dst_off);
		int bad = !d || !o || get_u64(o, &r->t[k].offset, "dst_offset");

		if (!bad) {
			r->dst[k] = as_device(d, true, &r->own_dst[k]);
			bad = !r->dst[k];
		}
		Py_XDECREF(d);
		Py_XDECREF(o);
		if (bad) {
			request_free(r);
			return -1;
		}
		r->nr_dst = (size_t)k + 1;
		r->t[k].dev = ((DeviceObject *)r->dst[k])->dev;
	}
	if (parse_ranges(ranges, r)) {
		request_free(r);
		return -1;
	}
	return 0;
}

static struct blkcopy_dev *src_of(const struct request *r)
{
	return ((DeviceObject *)r->src)->dev;
}

/* OSError for @err with the device's account: the first destination that has one, else the source's. */
static PyObject *raise_request_err(int err, const struct request *r)
{
	for (size_t k = 0; k < r->nr_dst; k++)
		if (*blkcopy_dev_error(r->t[k].dev))
			return raise_err(err, r->t[k].dev, NULL);
	return raise_err(err, src_of(r), NULL);
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                 */

static PyTypeObject ProgressType;

static PyStructSequence_Field progress_fields[] = {
	{ "total", "bytes in the request" },
	{ "done", "bytes written to the destination so far, any order" },
	{ "committed", "the destination prefix known written" },
	{ "native_bytes", "of done: by native copy" },
	{ "emulated_bytes", "of done: by emulation" },
	{ "error", "the first error, as a negative errno; 0 if none" },
	{ "finished", "nothing in flight and nothing more will be issued" },
	{ "methods", "bytes by method name ('nvme_copy', 'emulate', ...)" },
	{ NULL },
};

static PyStructSequence_Desc progress_desc = {
	"blkcopy.Progress", "The state of a copy, in bytes.", progress_fields, 8,
};

static PyObject *progress_object(const struct blkcopy_progress *p)
{
	PyObject *o = PyStructSequence_New(&ProgressType), *m = PyDict_New();

	if (!o || !m) {
		Py_XDECREF(o);
		Py_XDECREF(m);
		return NULL;
	}
	for (int k = 0; k < BLKCOPY_METHOD_MAX; k++) {
		const char *name = blkcopy_method_name((enum blkcopy_method)k);
		PyObject *v;

		if (!name || !p->method_bytes[k])
			continue;
		v = PyLong_FromUnsignedLongLong(p->method_bytes[k]);
		if (!v || PyDict_SetItemString(m, name, v)) {
			Py_XDECREF(v);
			Py_DECREF(m);
			Py_DECREF(o);
			return NULL;
		}
		Py_DECREF(v);
	}
	PyStructSequence_SET_ITEM(o, 0, PyLong_FromUnsignedLongLong(p->total));
	PyStructSequence_SET_ITEM(o, 1, PyLong_FromUnsignedLongLong(p->done));
	PyStructSequence_SET_ITEM(o, 2, PyLong_FromUnsignedLongLong(p->committed));
	PyStructSequence_SET_ITEM(o, 3, PyLong_FromUnsignedLongLong(p->native_bytes));
	PyStructSequence_SET_ITEM(o, 4, PyLong_FromUnsignedLongLong(p->emulated_bytes));
	PyStructSequence_SET_ITEM(o, 5, PyLong_FromLong(p->error));
	PyStructSequence_SET_ITEM(o, 6, PyBool_FromLong(p->finished));
	PyStructSequence_SET_ITEM(o, 7, m);
	if (PyErr_Occurred()) {
		Py_DECREF(o);
		return NULL;
	}
	return o;
}

/* ------------------------------------------------------------------------ */
/* Job                                                                      */

typedef struct {
	PyObject_HEAD
	struct blkcopy_job *job;
	struct request req;
	struct blkcopy_progress final;
	struct blkcopy_progress target_final[BLKCOPY_MAX_TARGETS];
	ssize_t result;		/* once finished */
	bool finished;
} JobObject;

static PyTypeObject JobType;

static JobObject *job_running(JobObject *self)
{
	if (!self->job) {
		PyErr_SetString(PyExc_ValueError, "the blkcopy.Job is finished");
		return NULL;
	}
	return self;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One wait of at most @ms in the library, without the GIL: 1 once the job finished. */
static int job_wait_ms(JobObject *self, int ms)
{
	int ret;

	Py_BEGIN_ALLOW_THREADS
	ret = blkcopy_job_wait(self->job, ms);
	Py_END_ALLOW_THREADS
	return ret;
}

/* Wait for the end and free the library's job, keeping what progress() reports after it. */
static void finish_now(JobObject *self)
{
	ssize_t n;

	Py_BEGIN_ALLOW_THREADS
	while (!blkcopy_job_wait(self->job, -1))
		;
	Py_END_ALLOW_THREADS
	for (size_t k = 0; k < self->req.nr_dst; k++)
		blkcopy_job_target_progress(self->job, k, &self->target_final[k]);
	Py_BEGIN_ALLOW_THREADS
	n = blkcopy_job_finish(self->job, &self->final);
	Py_END_ALLOW_THREADS
	self->job = NULL;
	self->result = n;
	self->finished = true;
}

/* Finish it (waiting for what is in flight): the bytes, or OSError with the job's error. */
static PyObject *job_finish(JobObject *self, PyObject *unused)
{
	if (!self->finished) {
		if (!job_running(self))
			return NULL;
		finish_now(self);
	}
	if (self->result < 0) {
		raise_request_err((int)self->result, &self->req);
		/* How much reached the destination: a caller may resume from there. */
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		PyErr_NormalizeException(&type, &value, &tb);
		if (value) {
			PyObject *c = PyLong_FromUnsignedLongLong(self->final.committed);

			if (c) {
				PyObject_SetAttrString(value, "committed", c);
				Py_DECREF(c);
			}
		}
		PyErr_Restore(type, value, tb);
		return NULL;
	}
	return PyLong_FromSsize_t(self->result);
}

/*
 * Drive the job to its end, calling @callback(progress) about every
 * POLL_MS; a signal's exception (KeyboardInterrupt) cancels it, lets it
 * stop, and is raised then.
 */
static PyObject *job_run(JobObject *self, PyObject *callback)
{
	for (;;) {
		const int done = job_wait_ms(self, POLL_MS);

		if (PyErr_CheckSignals()) {
			PyObject *type, *value, *tb;

			PyErr_Fetch(&type, &value, &tb);
			blkcopy_job_cancel(self->job);
			PyObject *r = job_finish(self, NULL);
			Py_XDECREF(r);
			PyErr_Clear();
			PyErr_Restore(type, value, tb);
			return NULL;
		}
		if (callback && callback != Py_None) {
			struct blkcopy_progress p;

			blkcopy_job_progress(self->job, &p);
			PyObject *po = progress_object(&p);
			PyObject *r = po ? PyObject_CallOneArg(callback, po) : NULL;
			Py_XDECREF(po);
			if (!r) {
				/* The callback raised: the copy stops with it. */
				PyObject *type, *value, *tb;

				PyErr_Fetch(&type, &value, &tb);
				blkcopy_job_cancel(self->job);
				PyObject *f = job_finish(self, NULL);
				Py_XDECREF(f);
				PyErr_Clear();
				PyErr_Restore(type, value, tb);
				return NULL;
			}
			Py_DECREF(r);
		}
		if (done)
			return job_finish(self, NULL);
	}
}

/*
 * A job from copy()'s or submit()'s arguments: src, dst, ranges, dst_offset
 * (positional or by name), the options (the other names), and with
 * @callbackp the "progress" callback.
 */
static PyObject *job_new_from(PyObject *args, PyObject *kw, PyObject **callbackp)
{
	static char *kwlist[] = { "src", "dst", "ranges", "dst_offset", NULL };
	PyObject *src, *dst, *ranges = Py_None, *dst_off = NULL;
	PyObject *call_kw = PyDict_New(), *opts = PyDict_New(), *key, *value, *zero = NULL;
	JobObject *self = NULL;
	Py_ssize_t pos = 0;
	int ret;

	if (!call_kw || !opts)
		goto out;
	while (kw && PyDict_Next(kw, &pos, &key, &value)) {
		const char *k = PyUnicode_AsUTF8(key);
		bool call_arg = false;

		if (!k)
			goto out;
		for (size_t i = 0; kwlist[i]; i++)
			call_arg = call_arg || !strcmp(k, kwlist[i]);
		if (callbackp && !strcmp(k, "progress")) {
			*callbackp = value;
			Py_INCREF(value);
			continue;
		}
		if (PyDict_SetItem(call_arg ? call_kw : opts, key, value))
			goto out;
	}
	if (!PyArg_ParseTupleAndKeywords(args, call_kw, "OO|OO", kwlist, &src, &dst, &ranges,
					 &dst_off))
		goto out;
	if (!dst_off) {
		dst_off = zero = PyLong_FromLong(0);
		if (!zero)
			goto out;
	}
	self = PyObject_New(JobObject, &JobType);
	if (!self)
		goto out;
	self->job = NULL;
	self->finished = true;	/* until submitted */
	self->result = 0;
	memset(&self->final, 0, sizeof(self->final));
	if (request_parse(src, dst, ranges, dst_off, opts, &self->req)) {
		memset(&self->req, 0, sizeof(self->req));
		Py_CLEAR(self);
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS
	ret = blkcopy_job_submit_multi(src_of(&self->req), self->req.ranges, self->req.nr,
				       self->req.t, self->req.nr_dst, &self->req.opts, &self->job);
	Py_END_ALLOW_THREADS
	if (ret) {
		raise_request_err(ret, &self->req);
		self->job = NULL;
		Py_CLEAR(self);
		goto out;
	}
	self->finished = false;
out:
	Py_XDECREF(call_kw);
	Py_XDECREF(opts);
	Py_XDECREF(zero);
	return (PyObject *)self;
}

static void job_dealloc(JobObject *self)
{
	if (self->job) {
		/* Dropped while running: stop it, wait for what is in flight. */
		blkcopy_job_cancel(self->job);
		Py_BEGIN_ALLOW_THREADS
		blkcopy_job_finish(self->job, NULL);
		Py_END_ALLOW_THREADS
	}
	request_free(&self->req);
	PyObject_Free(self);
}

/* progress(target=None): the job's (summed over its destinations), or destination @target's. */
static PyObject *job_progress(JobObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "target", NULL };
	struct blkcopy_progress p;
	PyObject *target = Py_None;
	Py_ssize_t k = -1;

	if (args && !PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &target))
		return NULL;
	if (target != Py_None) {
		k = PyNumber_AsSsize_t(target, PyExc_IndexError);
		if (k == -1 && PyErr_Occurred())
			return NULL;
		if (k < 0 || (size_t)k >= self->req.nr_dst) {
			PyErr_Format(PyExc_IndexError, "target %zd: the job has %zu destinations", k,
				     self->req.nr_dst);
			return NULL;
		}
	}
	if (self->finished)
		return progress_object(k < 0 ? &self->final : &self->target_final[k]);
	if (k < 0)
		blkcopy_job_progress(self->job, &p);
	else
		blkcopy_job_target_progress(self->job, (size_t)k, &p);
	return progress_object(&p);
}

static PyObject *job_poll(JobObject *self, PyObject *unused)
{
	if (self->finished)
		Py_RETURN_TRUE;
	return PyBool_FromLong(blkcopy_job_poll(self->job));
}

static PyObject *job_wait(JobObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *t = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &t))
		return NULL;
	if (self->finished)
		Py_RETURN_TRUE;
	int64_t deadline = 0;
	if (t != Py_None) {
		const double secs = PyFloat_AsDouble(t);

		if (secs == -1 && PyErr_Occurred())
			return NULL;
		deadline = monotonic_ms() + (secs > 0 ? (int64_t)(secs * 1000) : 0);
	}
	/* In slices, so that a signal reaches Python in time. */
	for (;;) {
		int64_t ms = POLL_MS;

		if (t != Py_None) {
			const int64_t left = deadline - monotonic_ms();

			if (left <= 0)
				return PyBool_FromLong(blkcopy_job_poll(self->job));
			if (left < ms)
				ms = left;
		}
		if (job_wait_ms(self, (int)ms))
			Py_RETURN_TRUE;
		if (PyErr_CheckSignals())
			return NULL;
	}
}

static PyObject *job_cancel(JobObject *self, PyObject *unused)
{
	if (!self->finished)
		blkcopy_job_cancel(self->job);
	Py_RETURN_NONE;
}

static PyObject *job_fileno(JobObject *self, PyObject *unused)
{
	return job_running(self) ? PyLong_FromLong(blkcopy_job_fd(self->job)) : NULL;
}

static PyObject *job_set_rate(JobObject *self, PyObject *arg)
{
	uint64_t v;

	if (!job_running(self) || get_u64(arg, &v, "rate"))
		return NULL;
	const int ret = blkcopy_job_set_rate(self->job, v);
	if (ret)
		return raise_err(ret, NULL, NULL);
	Py_RETURN_NONE;
}

/* stats(): what blkcopy copy --json reports about the way the copy went. */
static PyObject *job_stats(JobObject *self, PyObject *unused)
{
	struct blkcopy_stats st;

	if (!job_running(self))
		return NULL;
	blkcopy_job_stats(self->job, &st, sizeof(st));
	PyObject *em = PyDict_New();
	if (!em)
		return NULL;
	for (int k = 0; k < BLKCOPY_EMULATED_MAX; k++) {
		const char *name = blkcopy_emulated_name((enum blkcopy_emulated)k);
		PyObject *v;

		if (!name || !st.emulated[k])
			continue;
		v = PyLong_FromUnsignedLongLong(st.emulated[k]);
		if (!v || PyDict_SetItemString(em, name, v)) {
			Py_XDECREF(v);
			Py_DECREF(em);
			return NULL;
		}
		Py_DECREF(v);
	}
	PyObject *mismatch = st.mismatch_offset == UINT64_MAX
				     ? (Py_INCREF(Py_None), Py_None)
				     : PyLong_FromUnsignedLongLong(st.mismatch_offset);
	PyObject *r = Py_BuildValue("{sNsKsOsKsdsdsKsKsNsKss}", "emulated", em, "native_min",
				    (unsigned long long)st.native_min, "native_min_learnt",
				    st.native_min_learnt ? Py_True : Py_False, "native_commands",
				    (unsigned long long)st.native_commands, "native_seconds",
				    st.native_ns / 1e9, "emulated_seconds", st.emulated_busy_ns / 1e9,
				    "emulated_done", (unsigned long long)st.emulated_done,
				    "verified_bytes", (unsigned long long)st.verified_bytes,
				    "mismatch_offset", mismatch, "p2p_bytes",
				    (unsigned long long)st.p2p_bytes, "p2p_memory", st.p2p_pci);
	return r;
}

static PyObject *job_iter(JobObject *self)
{
	Py_INCREF(self);
	return (PyObject *)self;
}

/* Iteration: the progress about every POLL_MS, the last one once it finished. */
static PyObject *job_next(JobObject *self)
{
	if (self->finished)
		return NULL;	/* StopIteration */
	const int done = job_wait_ms(self, POLL_MS);
	if (PyErr_CheckSignals())
		return NULL;
	PyObject *p = job_progress(self, NULL, NULL);
	if (p && done)
		finish_now(self);	/* the last progress; finish() then returns or raises */
	return p;
}

static PyObject *job_enter(JobObject *self, PyObject *unused)
{
	Py_INCREF(self);
	return (PyObject *)self;
}

static PyObject *job_exit(JobObject *self, PyObject *args)
{
	if (!self->finished) {
		blkcopy_job_cancel(self->job);
		PyObject *r = job_finish(self, NULL);
		Py_XDECREF(r);
		PyErr_Clear();	/* the body's exception, if any, is what propagates */
	}
	Py_RETURN_FALSE;
}

static PyMethodDef job_methods[] = {
	{ "progress", (PyCFunction)(void (*)(void))job_progress, METH_VARARGS | METH_KEYWORDS,
	  "progress(target=None): the state of the copy now (a Progress), of destination target if given." },
	{ "poll", (PyCFunction)job_poll, METH_NOARGS, "Move it along without blocking; True once finished." },
	{ "wait", (PyCFunction)job_wait, METH_VARARGS | METH_KEYWORDS,
	  "wait(timeout=None): drive it until finished (True) or the timeout, in seconds (False)." },
	{ "cancel", (PyCFunction)job_cancel, METH_NOARGS, "Stop issuing; it then finishes with ECANCELED." },
	{ "finish", (PyCFunction)job_finish, METH_NOARGS,
	  "Wait for the end: the bytes copied, or OSError (with .committed: the destination prefix written)." },
	{ "fileno", (PyCFunction)job_fileno, METH_NOARGS,
	  "A descriptor that polls readable when poll() has something to do." },
	{ "set_rate", (PyCFunction)job_set_rate, METH_O, "Bytes per second at most from now on (0: no limit)." },
	{ "stats", (PyCFunction)job_stats, METH_NOARGS, "How the copy went: what was emulated and why, ..." },
	{ "__enter__", (PyCFunction)job_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)job_exit, METH_VARARGS, NULL },
	{ NULL },
};

static PyTypeObject JobType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "blkcopy.Job",
	.tp_doc = "A copy in flight: blkcopy.submit(src, dst, ranges=None, dst_offset=0, **options).",
	.tp_basicsize = sizeof(JobObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)job_dealloc,
	.tp_iter = (getiterfunc)job_iter,
	.tp_iternext = (iternextfunc)job_next,
	.tp_methods = job_methods,
};

/* ------------------------------------------------------------------------ */
/* Module functions                                                         */

static PyObject *mod_open(PyObject *m, PyObject *args, PyObject *kw)
{
	return PyObject_Call((PyObject *)&DeviceType, args, kw);
}

static PyObject *mod_submit(PyObject *m, PyObject *args, PyObject *kw)
{
	return job_new_from(args, kw, NULL);
}

static PyObject *mod_copy(PyObject *m, PyObject *args, PyObject *kw)
{
	PyObject *callback = NULL;
	JobObject *job = (JobObject *)job_new_from(args, kw, &callback);
	PyObject *r = NULL;

	if (job)
		r = job_run(job, callback);
	Py_XDECREF(callback);
	Py_XDECREF(job);
	return r;
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
	return PyUnicode_FromString(blkcopy_version());
}

static PyMethodDef module_methods[] = {
	{ "open", (PyCFunction)(void (*)(void))mod_open, METH_VARARGS | METH_KEYWORDS,
	  "open(path, write=False, exclusive=False) -> Device" },
	{ "copy", (PyCFunction)(void (*)(void))mod_copy, METH_VARARGS | METH_KEYWORDS,
	  "copy(src, dst, ranges=None, dst_offset=0, *, progress=None, **options) -> bytes copied.\n\n"
	  "src, dst: paths or Devices (dst may be a list of up to 16, dst_offset then one int\n"
	  "for all or a list); ranges: (offset, length) pairs (None: all of src);\n"
	  "options as the CLI's: no_offload, no_emulation, sync (True), buffered, verify,\n"
	  "p2p (True, 'src', 'dst'), queue_depth, max_inflight, chunk_size, native_min, rate;\n"
	  "progress: called with a Progress about every 100 ms." },
	{ "submit", (PyCFunction)(void (*)(void))mod_submit, METH_VARARGS | METH_KEYWORDS,
	  "submit(src, dst, ranges=None, dst_offset=0, **options) -> Job" },
	{ "version", mod_version, METH_NOARGS, "The library's version." },
	{ NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "blkcopy",
	.m_doc = "Block-layer copy offload for Linux user space (libblkcopy).",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_blkcopy(void);
PyMODINIT_FUNC PyInit_blkcopy(void)
{
	PyObject *m;

	if (PyType_Ready(&DeviceType) < 0 || PyType_Ready(&JobType) < 0)
		return NULL;
	if (!ProgressType.tp_name && PyStructSequence_InitType2(&ProgressType, &progress_desc) < 0)
		return NULL;
	m = PyModule_Create(&module);
	if (!m)
		return NULL;
	Py_INCREF(&DeviceType);
	Py_INCREF(&JobType);
	Py_INCREF(&ProgressType);
	if (PyModule_AddObject(m, "Device", (PyObject *)&DeviceType) ||
	    PyModule_AddObject(m, "Job", (PyObject *)&JobType) ||
	    PyModule_AddObject(m, "Progress", (PyObject *)&ProgressType) ||
	    PyModule_AddStringConstant(m, "__version__", blkcopy_version()) ||
	    PyModule_AddIntConstant(m, "MAX_RANGES", BLKCOPY_MAX_RANGES)) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
