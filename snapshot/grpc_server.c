// SPDX-License-Identifier: Apache-2.0
/*
 * The gRPC transport of the snapshotter: grpc core's C API on a unix
 * socket, messages decoded and encoded with protobuf-c (code generated at
 * build time from containerd's snapshots.proto), dispatched to service.c.
 * Errors become the status codes containerd's errdefs understand.
 *
 * Threads: each worker owns a completion queue and serves one call at a
 * time, start to finish (request, receive, handle, send status); no state
 * is shared between workers but the service (which locks) and their pool
 * (grpc_pool.c). A Prepare that mounts a layer holds its worker while the
 * layer's registry answers, so the pool adds workers while calls come (up
 * to GRPC_MAX_WORKERS, whose queues are all registered before the server
 * starts): a Stat, a List or a Commit is never queued behind slow mounts.
 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "lp_common.h"
#include "grpc_unix.h"
#include "lp_log.h"
#include "snap_int.h"

#define GRPC_MAX_MESSAGE (4 * 1024 * 1024) /* containerd's default too */
#define GRPC_MAX_WORKERS 64
#define GRPC_DEFAULT_WORKERS 8
#define LIST_BATCH 100 /* Info per streamed ListSnapshotsResponse */
#define METHOD_PREFIX "/containerd.services.snapshots.v1.Snapshots/"
#define METHOD_NAME_MAX 128

/* gRPC status codes (grpc/status.h has them; named here for clarity) */
enum {
	CODE_OK = 0,
	CODE_UNKNOWN = 2,
	CODE_INVALID_ARGUMENT = 3,
	CODE_NOT_FOUND = 5,
	CODE_ALREADY_EXISTS = 6,
	CODE_PERMISSION_DENIED = 7,
	CODE_FAILED_PRECONDITION = 9,
	CODE_UNIMPLEMENTED = 12,
	CODE_INTERNAL = 13,
	CODE_UNAVAILABLE = 14,
};

struct worker {
	struct lp_snap_grpc *g;
	grpc_completion_queue *cq;
};

struct lp_snap_grpc {
	grpc_server *server;
	grpc_completion_queue *shutdown_cq;
	struct lp_snap_svc *svc; /* borrowed, thread-safe */
	struct lp_snap_metrics *metrics; /* borrowed, thread-safe */
	struct worker workers[GRPC_MAX_WORKERS]; /* each with its queue */
	struct lp_grpc_pool *pool; /* their threads */
};

typedef Containerd__Services__Snapshots__V1__Info PbInfo;
typedef Containerd__Types__Mount PbMount;

unsigned int lp_snap_grpc_code(int r)
{
	switch (r) {
	case 0:
		return CODE_OK;
	case -ENOENT:
		return CODE_NOT_FOUND;
	case -EEXIST:
		return CODE_ALREADY_EXISTS;
	case -EBUSY:
	case -ENOTEMPTY:
	case -EPERM:
		return CODE_FAILED_PRECONDITION;
	case -EINVAL:
	case -E2BIG:
	case -ENAMETOOLONG:
		return CODE_INVALID_ARGUMENT;
	case -EACCES:
		return CODE_PERMISSION_DENIED;
	case -EOPNOTSUPP:
		return CODE_UNIMPLEMENTED;
	case -EAGAIN:
	case -ETIMEDOUT:
		return CODE_UNAVAILABLE;
	case -ENOMEM:
	case -EIO:
		return CODE_INTERNAL;
	default:
		return CODE_UNKNOWN;
	}
}

/* wait for @tag on the worker's queue; false when the op failed */
static bool wait_tag(struct worker *w, void *tag)
{
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(
			w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return false;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == tag)
			return ev.success != 0;
	}
}

/* ---- encoding helpers -------------------------------------------------- */

struct packed {
	uint8_t *data;
	size_t len;
};

static int pack(const ProtobufCMessage *msg, struct packed *out)
{
	out->len = protobuf_c_message_get_packed_size(msg);
	out->data = malloc(out->len ? out->len : 1);
	if (!out->data)
		return -ENOMEM;
	protobuf_c_message_pack(msg, out->data);
	return 0;
}

static PbMount **mounts_to_pb(const struct lp_snap_mount *m, PbMount *pm,
			      PbMount **arr)
{
	containerd__types__mount__init(pm);
	pm->type = (char *)m->type;
	pm->source = m->source;
	pm->target = (char *)"";
	pm->n_options = m->n_options;
	pm->options = (char **)m->options;
	arr[0] = pm;
	return arr;
}

/*
 * Labels of a request as borrowed pairs. A macro, not a function (house
 * rule 10): protobuf-c generates one LabelsEntry type per message, with the
 * same members, and a function would have to pun between them.
 */
struct kv_list {
	struct lp_snap_kv *v;
	size_t n;
};

#define KV_FROM(list, entries, count)                                          \
	do {                                                                   \
		(list)->n = 0;                                                 \
		(list)->v = calloc((count) ? (count) : 1, sizeof(*(list)->v)); \
		if ((list)->v)                                                 \
			for (size_t i_ = 0; i_ < (count); i_++) {              \
				(list)->v[i_].key = (entries)[i_]->key;        \
				(list)->v[i_].value = (entries)[i_]->value;    \
				(list)->n++;                                   \
			}                                                      \
	} while (0)

/* an Info message over @r (strings borrowed from @r); free with info_free */
static PbInfo *info_new(const struct lp_snap_rec *r)
{
	Containerd__Services__Snapshots__V1__Info__LabelsEntry *e;
	Google__Protobuf__Timestamp *c, *u;
	PbInfo *info;
	size_t i;

	info = calloc(1, sizeof(*info) + 2 * sizeof(*c) +
				 r->n_labels * (sizeof(*e) + sizeof(e)));
	if (!info)
		return NULL;
	containerd__services__snapshots__v1__info__init(info);
	c = (Google__Protobuf__Timestamp *)(info + 1);
	u = c + 1;
	google__protobuf__timestamp__init(c);
	google__protobuf__timestamp__init(u);
	c->seconds = r->created_ns / 1000000000;
	c->nanos = (int32_t)(r->created_ns % 1000000000);
	u->seconds = r->updated_ns / 1000000000;
	u->nanos = (int32_t)(r->updated_ns % 1000000000);
	info->name = r->key;
	info->parent = r->parent;
	info->kind = (Containerd__Services__Snapshots__V1__Kind)r->kind;
	info->created_at = c;
	info->updated_at = u;
	info->n_labels = r->n_labels;
	info->labels = (void *)(u + 1);
	e = (void *)(info->labels + r->n_labels);
	for (i = 0; i < r->n_labels; i++) {
		containerd__services__snapshots__v1__info__labels_entry__init(
			&e[i]);
		e[i].key = r->labels[i].key;
		e[i].value = r->labels[i].value;
		info->labels[i] = &e[i];
	}
	return info;
}

/* ---- one call ---------------------------------------------------------- */

struct call {
	struct worker *w;
	grpc_call *call;
	grpc_byte_buffer *req; /* the request message */
	const uint8_t *data;
	size_t len;
	grpc_slice req_slice;
	bool have_slice;
	bool sent_initial;
	struct lp_err err;
};

static int read_request(struct call *c)
{
	grpc_byte_buffer_reader rd;
	grpc_op op = { 0 };
	int tag;

	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->req;
	if (grpc_call_start_batch(c->call, &op, 1, &tag, NULL) !=
		    GRPC_CALL_OK ||
	    !wait_tag(c->w, &tag))
		return -EIO;
	if (!c->req) {
		c->data = (const uint8_t *)"";
		c->len = 0;
		return 0;
	}
	if (grpc_byte_buffer_length(c->req) > GRPC_MAX_MESSAGE)
		return -EFBIG;
	if (!grpc_byte_buffer_reader_init(&rd, c->req))
		return -EPROTO;
	c->req_slice = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	c->have_slice = true;
	c->data = GRPC_SLICE_START_PTR(c->req_slice);
	c->len = GRPC_SLICE_LENGTH(c->req_slice);
	return 0;
}

/* send one message (and the initial metadata before the first) */
static int send_message(struct call *c, const struct packed *p)
{
	grpc_op ops[2];
	grpc_slice s;
	grpc_byte_buffer *bb;
	size_t n = 0;
	bool ok;
	int tag;

	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		c->sent_initial = true;
	}
	s = grpc_slice_from_copied_buffer((const char *)p->data, p->len);
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	ok = grpc_call_start_batch(c->call, ops, n, &tag, NULL) ==
		     GRPC_CALL_OK &&
	     wait_tag(c->w, &tag);
	grpc_byte_buffer_destroy(bb);
	return ok ? 0 : -EIO;
}

static void send_status(struct call *c, unsigned int code, const char *msg)
{
	grpc_op ops[2];
	grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
	int tag;
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial = true;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n].data.send_status_from_server.status_details = &details;
	n++;
	if (grpc_call_start_batch(c->call, ops, n, &tag, NULL) == GRPC_CALL_OK)
		wait_tag(c->w, &tag);
	grpc_slice_unref(details);
}

/* ---- handlers: decode, call the service, encode ----------------------- */

static int reply_mounts(struct call *c, const struct lp_snap_mount *m,
			const ProtobufCMessageDescriptor *desc)
{
	/* Prepare/View/Mounts responses share one shape: repeated Mount 1 */
	Containerd__Services__Snapshots__V1__MountsResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_RESPONSE__INIT;
	PbMount pm, *arr[1];
	struct packed p;
	int r;

	resp.base.descriptor = desc;
	resp.n_mounts = 1;
	resp.mounts = mounts_to_pb(m, &pm, arr);
	r = pack(&resp.base, &p);
	if (r == 0)
		r = send_message(c, &p);
	free(p.data);
	return r;
}

static int send_empty(struct call *c)
{
	Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
	struct packed p;
	int r = pack(&e.base, &p);

	if (r == 0)
		r = send_message(c, &p);
	free(p.data);
	return r;
}

static int send_info(struct call *c, const struct lp_snap_rec *rec, bool update)
{
	Containerd__Services__Snapshots__V1__StatSnapshotResponse st =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
	Containerd__Services__Snapshots__V1__UpdateSnapshotResponse up =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__UPDATE_SNAPSHOT_RESPONSE__INIT;
	PbInfo *info = info_new(rec);
	struct packed p = { 0 };
	int r;

	if (!info)
		return -ENOMEM;
	st.info = info;
	up.info = info;
	r = pack(update ? &up.base : &st.base, &p);
	if (r == 0)
		r = send_message(c, &p);
	free(p.data);
	free(info);
	return r;
}

static int do_prepare(struct call *c, bool view)
{
	struct lp_snap_svc *svc = c->w->g->svc;
	struct lp_snap_mount m = { 0 };
	struct kv_list kv = { 0 };
	int r;

	if (view) {
		Containerd__Services__Snapshots__V1__ViewSnapshotRequest *q =
			containerd__services__snapshots__v1__view_snapshot_request__unpack(
				NULL, c->len, c->data);
		if (!q)
			return lp_err_set(&c->err, -EINVAL, "bad request");
		KV_FROM(&kv, q->labels, q->n_labels);
		r = kv.v ? lp_snap_svc_prepare(svc, q->key, q->parent, kv.v,
					       kv.n, true, &m, &c->err) :
			   -ENOMEM;
		containerd__services__snapshots__v1__view_snapshot_request__free_unpacked(
			q, NULL);
	} else {
		Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *q =
			containerd__services__snapshots__v1__prepare_snapshot_request__unpack(
				NULL, c->len, c->data);
		if (!q)
			return lp_err_set(&c->err, -EINVAL, "bad request");
		KV_FROM(&kv, q->labels, q->n_labels);
		r = kv.v ? lp_snap_svc_prepare(svc, q->key, q->parent, kv.v,
					       kv.n, false, &m, &c->err) :
			   -ENOMEM;
		containerd__services__snapshots__v1__prepare_snapshot_request__free_unpacked(
			q, NULL);
	}
	free(kv.v);
	if (r == 0)
		r = reply_mounts(
			c, &m,
			view ? &containerd__services__snapshots__v1__view_snapshot_response__descriptor :
			       &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor);
	lp_snap_mount_clear(&m);
	return r;
}

static int do_mounts(struct call *c)
{
	Containerd__Services__Snapshots__V1__MountsRequest *q;
	struct lp_snap_mount m = { 0 };
	int r;

	q = containerd__services__snapshots__v1__mounts_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	r = lp_snap_svc_mounts(c->w->g->svc, q->key, &m, &c->err);
	containerd__services__snapshots__v1__mounts_request__free_unpacked(
		q, NULL);
	if (r == 0)
		r = reply_mounts(
			c, &m,
			&containerd__services__snapshots__v1__mounts_response__descriptor);
	lp_snap_mount_clear(&m);
	return r;
}

static int do_commit(struct call *c)
{
	Containerd__Services__Snapshots__V1__CommitSnapshotRequest *q;
	struct kv_list kv = { 0 };
	int r;

	q = containerd__services__snapshots__v1__commit_snapshot_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	KV_FROM(&kv, q->labels, q->n_labels);
	r = kv.v ? lp_snap_svc_commit(c->w->g->svc, q->name, q->key, kv.v, kv.n,
				      &c->err) :
		   -ENOMEM;
	containerd__services__snapshots__v1__commit_snapshot_request__free_unpacked(
		q, NULL);
	free(kv.v);
	return r ? r : send_empty(c);
}

static int do_remove(struct call *c)
{
	Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *q;
	int r;

	q = containerd__services__snapshots__v1__remove_snapshot_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	r = lp_snap_svc_remove(c->w->g->svc, q->key, &c->err);
	containerd__services__snapshots__v1__remove_snapshot_request__free_unpacked(
		q, NULL);
	return r ? r : send_empty(c);
}

static int do_stat(struct call *c)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest *q;
	struct lp_snap_rec rec = { 0 };
	int r;

	q = containerd__services__snapshots__v1__stat_snapshot_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	r = lp_snap_svc_stat(c->w->g->svc, q->key, &rec, &c->err);
	containerd__services__snapshots__v1__stat_snapshot_request__free_unpacked(
		q, NULL);
	if (r == 0)
		r = send_info(c, &rec, false);
	lp_snap_rec_clear(&rec);
	return r;
}

static int do_update(struct call *c)
{
	Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *q;
	struct lp_snap_rec rec = { 0 };
	struct kv_list kv = { 0 };
	const char *const *paths = NULL;
	size_t n_paths = 0;
	int r;

	q = containerd__services__snapshots__v1__update_snapshot_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	if (!q->info) {
		r = lp_err_set(&c->err, -EINVAL, "no info");
		goto out;
	}
	KV_FROM(&kv, q->info->labels, q->info->n_labels);
	if (q->update_mask) {
		paths = (const char *const *)q->update_mask->paths;
		n_paths = q->update_mask->n_paths;
	}
	r = kv.v ? lp_snap_svc_update(c->w->g->svc, q->info->name, kv.v, kv.n,
				      paths, n_paths, &rec, &c->err) :
		   -ENOMEM;
	if (r == 0)
		r = send_info(c, &rec, true);
out:
	containerd__services__snapshots__v1__update_snapshot_request__free_unpacked(
		q, NULL);
	free(kv.v);
	lp_snap_rec_clear(&rec);
	return r;
}

static int do_usage(struct call *c)
{
	Containerd__Services__Snapshots__V1__UsageRequest *q;
	Containerd__Services__Snapshots__V1__UsageResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
	struct packed p = { 0 };
	int r;

	q = containerd__services__snapshots__v1__usage_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	r = lp_snap_svc_usage(c->w->g->svc, q->key, &resp.size, &resp.inodes,
			      &c->err);
	containerd__services__snapshots__v1__usage_request__free_unpacked(q,
									  NULL);
	if (r == 0)
		r = pack(&resp.base, &p);
	if (r == 0)
		r = send_message(c, &p);
	free(p.data);
	return r;
}

/* List: collect copies under the service lock, then stream in batches */
struct list_acc {
	struct lp_snap_rec *v;
	size_t n, cap;
};

static int list_cb(void *opaque, const struct lp_snap_rec *r)
{
	struct list_acc *a = opaque;
	struct lp_snap_rec *nv;

	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		nv = realloc(a->v, a->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->v = nv;
	}
	if (lp_snap_rec_copy(r, &a->v[a->n]) < 0)
		return -ENOMEM;
	a->n++;
	return 0;
}

static int send_list(struct call *c, const struct list_acc *a)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
	PbInfo *batch[LIST_BATCH];
	struct packed p = { 0 };
	size_t i = 0, n, k;
	int r = 0;

	while (i < a->n && !r) {
		n = a->n - i < LIST_BATCH ? a->n - i : LIST_BATCH;
		for (k = 0; k < n; k++) {
			batch[k] = info_new(&a->v[i + k]);
			if (!batch[k])
				r = -ENOMEM;
		}
		resp.n_info = n;
		resp.info = batch;
		if (!r)
			r = pack(&resp.base, &p);
		if (!r)
			r = send_message(c, &p);
		free(p.data);
		p.data = NULL;
		for (k = 0; k < n; k++)
			free(batch[k]);
		i += n;
	}
	return r;
}

static int do_list(struct call *c)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsRequest *q;
	struct list_acc a = { 0 };
	size_t i;
	int r;

	q = containerd__services__snapshots__v1__list_snapshots_request__unpack(
		NULL, c->len, c->data);
	if (!q)
		return lp_err_set(&c->err, -EINVAL, "bad request");
	r = lp_snap_svc_list(c->w->g->svc, (const char *const *)q->filters,
			     q->n_filters, list_cb, &a, &c->err);
	containerd__services__snapshots__v1__list_snapshots_request__free_unpacked(
		q, NULL);
	if (r == 0)
		r = send_list(c, &a);
	for (i = 0; i < a.n; i++)
		lp_snap_rec_clear(&a.v[i]);
	free(a.v);
	return r;
}

static int do_cleanup(struct call *c)
{
	int r = lp_snap_svc_cleanup(c->w->g->svc, &c->err);

	return r ? r : send_empty(c);
}

static const struct {
	const char *name;
	enum lp_snap_rpc rpc;
} methods[] = {
	{ "Prepare", LP_RPC_PREPARE }, { "View", LP_RPC_VIEW },
	{ "Mounts", LP_RPC_MOUNTS },   { "Commit", LP_RPC_COMMIT },
	{ "Remove", LP_RPC_REMOVE },   { "Stat", LP_RPC_STAT },
	{ "Update", LP_RPC_UPDATE },   { "List", LP_RPC_LIST },
	{ "Usage", LP_RPC_USAGE },     { "Cleanup", LP_RPC_CLEANUP },
};

static int dispatch(struct call *c, enum lp_snap_rpc rpc)
{
	switch (rpc) {
	case LP_RPC_PREPARE:
		return do_prepare(c, false);
	case LP_RPC_VIEW:
		return do_prepare(c, true);
	case LP_RPC_MOUNTS:
		return do_mounts(c);
	case LP_RPC_COMMIT:
		return do_commit(c);
	case LP_RPC_REMOVE:
		return do_remove(c);
	case LP_RPC_STAT:
		return do_stat(c);
	case LP_RPC_UPDATE:
		return do_update(c);
	case LP_RPC_LIST:
		return do_list(c);
	case LP_RPC_USAGE:
		return do_usage(c);
	case LP_RPC_CLEANUP:
		return do_cleanup(c);
	default:
		return -EOPNOTSUPP;
	}
}

static void serve_call(struct worker *w, grpc_call *gc,
		       const grpc_call_details *det)
{
	char method[METHOD_NAME_MAX];
	struct call c = { 0 };
	uint64_t t0 = lp_mono_ns();
	size_t len = GRPC_SLICE_LENGTH(det->method), i;
	unsigned int code;
	int r, rpc = -1;

	c.w = w;
	c.call = gc;
	if (len >= sizeof(method))
		len = sizeof(method) - 1;
	memcpy(method, GRPC_SLICE_START_PTR(det->method), len);
	method[len] = '\0';
	if (!strncmp(method, METHOD_PREFIX, strlen(METHOD_PREFIX)))
		for (i = 0; i < LP_ARRAY_SIZE(methods); i++)
			if (!strcmp(method + strlen(METHOD_PREFIX),
				    methods[i].name))
				rpc = (int)methods[i].rpc;
	r = read_request(&c);
	if (r < 0) {
		lp_err_set(&c.err, r, "cannot read the request");
	} else if (rpc < 0) {
		r = lp_err_set(&c.err, -EOPNOTSUPP, "unknown method %s",
			       method);
	} else {
		r = dispatch(&c, (enum lp_snap_rpc)rpc);
	}
	code = lp_snap_grpc_code(r);
	if (r < 0 && r != -EEXIST && r != -ENOENT)
		lp_log_info("%s: %s", method, lp_err_str(&c.err, r));
	else
		lp_log_debug("%s: %s", method,
			     r ? lp_err_str(&c.err, r) : "ok");
	send_status(&c, code, r ? lp_err_str(&c.err, r) : "");
	if (rpc >= 0)
		lp_snap_metrics_rpc(w->g->metrics, (enum lp_snap_rpc)rpc, code,
				    lp_mono_ns() - t0);
	if (c.have_slice)
		grpc_slice_unref(c.req_slice);
	if (c.req)
		grpc_byte_buffer_destroy(c.req);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	grpc_metadata_array md;
	grpc_call_details det;
	grpc_call *gc;
	int tag_new;

	for (;;) {
		gc = NULL;
		grpc_metadata_array_init(&md);
		grpc_call_details_init(&det);
		if (grpc_server_request_call(w->g->server, &gc, &det, &md,
					     w->cq, w->cq,
					     &tag_new) != GRPC_CALL_OK ||
		    !wait_tag(w, &tag_new)) {
			grpc_metadata_array_destroy(&md);
			grpc_call_details_destroy(&det);
			break; /* the server is shutting down */
		}
		lp_grpc_pool_took(w->g->pool);
		serve_call(w, gc, &det);
		lp_grpc_pool_back(w->g->pool);
		grpc_call_unref(gc);
		grpc_metadata_array_destroy(&md);
		grpc_call_details_destroy(&det);
	}
	return NULL;
}

int lp_snap_grpc_start(const char *path, unsigned int threads,
		       struct lp_snap_svc *svc, struct lp_snap_metrics *metrics,
		       struct lp_snap_grpc **ret_g, struct lp_err *err)
{
	grpc_arg args[2];
	grpc_channel_args cargs = { 2, args };
	struct lp_snap_grpc *g = NULL;
	void *wargs[GRPC_MAX_WORKERS];
	unsigned int i, n_first;
	int r = 0;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->svc = svc;
	g->metrics = metrics;
	n_first = threads ? threads : GRPC_DEFAULT_WORKERS;
	if (n_first > GRPC_MAX_WORKERS)
		n_first = GRPC_MAX_WORKERS;
	for (i = 0; i < GRPC_MAX_WORKERS; i++)
		wargs[i] = &g->workers[i];
	r = lp_grpc_pool_new("snapshots service", GRPC_MAX_WORKERS, worker_main,
			     wargs, &g->pool);
	if (r < 0) {
		free(g);
		return lp_err_set(err, r, "snapshots service workers: %s",
				  strerror(-r));
	}
	grpc_init();
	lp_grpc_msg_args(args, GRPC_MAX_MESSAGE);
	g->server = grpc_server_create(&cargs, NULL);
	g->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(g->server, g->shutdown_cq, NULL);
	for (i = 0; i < GRPC_MAX_WORKERS; i++) {
		g->workers[i].g = g;
		g->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(g->server,
						      g->workers[i].cq, NULL);
	}
	r = lp_grpc_listen_unix(g->server, path, err);
	if (r < 0)
		goto fail;
	r = lp_grpc_pool_grow(g->pool, n_first);
	if (r < 0) {
		lp_err_set(err, r, "worker threads: %s", strerror(-r));
		goto fail;
	}
	*ret_g = g;
	return 0;
fail:
	lp_snap_grpc_stop(g);
	return r;
}

void lp_snap_grpc_stop(struct lp_snap_grpc *g)
{
	unsigned int i;
	int tag;

	if (!g)
		return;
	lp_grpc_pool_close(g->pool); /* from here no worker starts */
	grpc_server_shutdown_and_notify(g->server, g->shutdown_cq, &tag);
	grpc_server_cancel_all_calls(g->server);
	grpc_completion_queue_pluck(g->shutdown_cq, &tag,
				    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	lp_grpc_pool_free(g->pool);
	grpc_server_destroy(g->server);
	for (i = 0; i < GRPC_MAX_WORKERS; i++)
		lp_grpc_drain(g->workers[i].cq);
	lp_grpc_drop_pluck(g->shutdown_cq);
	free(g);
	grpc_shutdown();
}
