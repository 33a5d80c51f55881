// SPDX-License-Identifier: Apache-2.0
/*
 * The CRI image-service proxy: kubelet's --image-service-endpoint points
 * here. Every runtime.v1.ImageService call (ListImages, ImageStatus,
 * PullImage, RemoveImage, ImageFsInfo, and any method added later) is
 * forwarded to containerd's CRI socket as raw bytes, with its deadline and
 * cancellation propagated and kubelet's metadata passed on, and
 * containerd's reply, status, message and metadata (initial and trailing)
 * returned as they came, but the transport's own headers (md_passes()):
 * the proxy has no opinion on images. It reads one
 * message, PullImageRequest (cri_msg.c), to keep the credentials kubelet
 * sends with it (cri_creds.c) for the snapshotter's layer resolution,
 * which otherwise never sees Kubernetes pull secrets.
 *
 * grpc core's C API, as the snapshots service (grpc_server.c): no methods
 * are registered, so every call arrives through grpc_server_request_call()
 * with its method name. Threads: each worker owns a server completion
 * queue and a client one, and serves one call at a time, start to finish;
 * nothing is shared between workers but the channel (thread-safe), the
 * credential store (locks) and their pool (grpc_pool.c). A PullImage holds
 * its worker until containerd has the image (minutes for a big one, for
 * ever behind a registry that does not answer): the pool adds workers while
 * calls come (up to CRI_MAX_WORKERS, whose queues are all registered before
 * the server starts), so that ImageStatus and ListImages are never queued
 * behind pulls.
 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cri_int.h"
#include "lp_common.h"
#include "grpc_unix.h"
#include "lp_log.h"
#include "snap_int.h"

#define CRI_SERVICE_PREFIX "/runtime.v1.ImageService/"
#define CRI_PULL_METHOD CRI_SERVICE_PREFIX "PullImage"
#define CRI_METHOD_MAX 256
#define CRI_DEFAULT_WORKERS 8
#define CRI_MAX_WORKERS 64

struct cri_worker {
	struct lp_cri_proxy *p;
	grpc_completion_queue *cq; /* the server side of calls */
	grpc_completion_queue *ccq; /* the upstream side */
	/* the RECV_CLOSE_ON_SERVER of the call being served: its tag, and
	 * whether it has come back (cq_wait() notes it whatever it waits for) */
	int close_tag;
	bool close_done;
	int cancelled; /* set by grpc when it came back: kubelet cancelled */
};

struct lp_cri_proxy {
	grpc_server *server;
	grpc_completion_queue *shutdown_cq;
	grpc_channel *upstream; /* containerd's CRI socket; thread-safe */
	char upstream_path[LP_SNAP_PATH_MAX];
	struct lp_cri_creds *creds; /* borrowed, thread-safe */
	struct cri_worker workers[CRI_MAX_WORKERS]; /* each with its queues */
	struct lp_grpc_pool *pool; /* their threads */
	bool grpc_inited;
};

/*
 * wait for @tag on @cq of worker @w; false when the op failed or the queue
 * shut down. The server call's close op may come back meanwhile, on the
 * same queue: it is noted in @w, not lost.
 */
static bool cq_wait(struct cri_worker *w, grpc_completion_queue *cq, void *tag)
{
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(
			cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return false;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &w->close_tag)
			w->close_done = true;
		if (ev.tag == tag)
			return ev.success != 0;
	}
}

/*
 * Keep the credentials of PullImage request @bb. Never fails the call: a
 * request the decoder refuses goes to containerd all the same (it decides
 * what is valid), and its layers are resolved without credentials.
 */
static void keep_credentials(struct lp_cri_proxy *p, grpc_byte_buffer *bb)
{
	struct lp_cri_pull *pull = NULL;
	grpc_byte_buffer_reader rd;
	grpc_slice s;
	bool have_slice = false;
	int r;

	if (!bb) {
		lp_log_warn("CRI PullImage without a request message");
		return;
	}
	if (grpc_byte_buffer_length(bb) > LP_CRI_MSG_MAX) {
		lp_log_warn("CRI PullImage: request over %d bytes: credentials "
			    "not kept",
			    LP_CRI_MSG_MAX);
		return;
	}
	pull = malloc(sizeof(*pull));
	if (!pull || !grpc_byte_buffer_reader_init(&rd, bb))
		goto out;
	s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	have_slice = true;
	r = lp_cri_pull_decode(GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s),
			       pull);
	if (r < 0) {
		lp_log_warn("CRI PullImage: undecodable request (%s): "
			    "credentials not kept",
			    strerror(-r));
		goto out;
	}
	r = lp_cri_creds_put(p->creds, pull);
	if (r > 0)
		lp_log_info("CRI PullImage %s: credentials kept for its "
			    "layers (user '%s')",
			    pull->image,
			    pull->username[0]	    ? pull->username :
			    pull->identity_token[0] ? "(identity token)" :
						      "(from auth)");
	else if (r == 0)
		lp_log_info("CRI PullImage %s: no credentials%s", pull->image,
			    pull->has_auth ? " (empty AuthConfig)" : "");
	else if (r == -EOPNOTSUPP)
		lp_log_warn("CRI PullImage %s: only a registry token, which "
			    "lazypull cannot use: its layers are resolved "
			    "without credentials",
			    pull->image);
	else
		lp_log_warn("CRI PullImage %s: credentials not kept: %s",
			    pull->image,
			    r == -EINVAL ? "bad image reference or auth" :
					   strerror(-r));
out:
	if (have_slice) {
		/* readall() made a copy of the request: wipe the secrets in
		 * it (the request itself goes on to containerd) */
		if (GRPC_SLICE_LENGTH(s))
			explicit_bzero(GRPC_SLICE_START_PTR(s),
				       GRPC_SLICE_LENGTH(s));
		grpc_slice_unref(s);
	}
	if (pull)
		lp_cri_pull_wipe(pull);
	free(pull);
}

/*
 * Whether metadata @key goes across: not the transport's own headers
 * (pseudo-headers, grpc-*, and those HTTP/2 framing sets), which grpc core
 * makes for each call itself.
 */
static bool md_passes(grpc_slice key)
{
	static const char *const own[] = {
		"user-agent",	    "te",
		"content-type",	    "host",
		"content-encoding", "accept-encoding"
	};
	const char *k = (const char *)GRPC_SLICE_START_PTR(key);
	size_t len = GRPC_SLICE_LENGTH(key), i;

	if (!len || k[0] == ':' || (len >= 5 && !memcmp(k, "grpc-", 5)))
		return false;
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (len == strlen(own[i]) && !memcmp(k, own[i], len))
			return false;
	return true;
}

/*
 * The entries of @in that pass (md_passes()) into @out, @n of them: a
 * malloc'd array of borrowed slices (@in must outlive it); NULL with 0
 * when none (or out of memory: the call goes on without them).
 */
static grpc_metadata *md_pass(const grpc_metadata_array *in, size_t *n)
{
	grpc_metadata *out;
	size_t i;

	*n = 0;
	if (!in || !in->count)
		return NULL;
	out = calloc(in->count, sizeof(*out));
	if (!out)
		return NULL;
	for (i = 0; i < in->count; i++)
		if (md_passes(in->metadata[i].key))
			out[(*n)++] = in->metadata[i];
	return out;
}

/* reply to the server call @gc with @msg (may be NULL) and a status, with
 * containerd's initial and trailing metadata @md, @trailing (NULL: none) */
static void reply(struct cri_worker *w, grpc_call *gc, grpc_byte_buffer *msg,
		  grpc_status_code code, grpc_slice details,
		  const grpc_metadata_array *md,
		  const grpc_metadata_array *trailing)
{
	grpc_metadata *imd, *tmd;
	grpc_op ops[3];
	size_t n = 0, ni, nt;
	int tag;

	imd = md_pass(md, &ni);
	tmd = md_pass(trailing, &nt);
	memset(ops, 0, sizeof(ops));
	ops[n].data.send_initial_metadata.count = ni;
	ops[n].data.send_initial_metadata.metadata = imd;
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (msg) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = msg;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details = &details;
	ops[n].data.send_status_from_server.trailing_metadata_count = nt;
	ops[n].data.send_status_from_server.trailing_metadata = tmd;
	n++;
	if (grpc_call_start_batch(gc, ops, n, &tag, NULL) == GRPC_CALL_OK)
		cq_wait(w, w->cq, &tag);
	free(imd);
	free(tmd);
}

/* one call: receive its message, forward it upstream, relay the answer */
static void serve_call(struct cri_worker *w, grpc_call *gc,
		       const grpc_call_details *det,
		       const grpc_metadata_array *in_md)
{
	struct lp_cri_proxy *p = w->p;
	char method[CRI_METHOD_MAX];
	grpc_byte_buffer *req = NULL, *resp = NULL;
	grpc_metadata_array up_md, up_trailing;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_call *uc = NULL;
	grpc_metadata *fwd_md = NULL;
	grpc_op ops[6];
	size_t len = GRPC_SLICE_LENGTH(det->method), n = 0, n_fwd = 0;
	uint64_t t0 = lp_mono_ns();
	bool close_started = false, replied = false;
	int tag;

	grpc_metadata_array_init(&up_md);
	grpc_metadata_array_init(&up_trailing);
	if (len >= sizeof(method))
		len = sizeof(method) - 1;
	memcpy(method, GRPC_SLICE_START_PTR(det->method), len);
	method[len] = '\0';
	/* grpc core learns of kubelet's cancel (and passes it on to the
	 * upstream call, GRPC_PROPAGATE_CANCELLATION) only through a pending
	 * RECV_CLOSE_ON_SERVER: started first, under its own tag */
	w->close_done = false;
	w->cancelled = 0;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &w->cancelled;
	close_started = grpc_call_start_batch(gc, ops, 1, &w->close_tag,
					      NULL) == GRPC_CALL_OK;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_MESSAGE;
	ops[0].data.recv_message.recv_message = &req;
	if (grpc_call_start_batch(gc, ops, 1, &tag, NULL) != GRPC_CALL_OK ||
	    !cq_wait(w, w->cq, &tag)) {
		lp_log_info("CRI %s: cannot read the request", method);
		goto out;
	}
	if (strncmp(method, CRI_SERVICE_PREFIX, strlen(CRI_SERVICE_PREFIX)) ||
	    len == sizeof(method) - 1) {
		grpc_slice_unref(details);
		details = grpc_slice_from_copied_string(
			"lazypull CRI proxy: only runtime.v1.ImageService is "
			"served here");
		reply(w, gc, NULL, GRPC_STATUS_UNIMPLEMENTED, details, NULL,
		      NULL);
		replied = true;
		goto out;
	}
	if (!strcmp(method, CRI_PULL_METHOD))
		keep_credentials(p, req);
	/* deadline and cancellation follow the kubelet's call */
	uc = grpc_channel_create_call(p->upstream, gc, GRPC_PROPAGATE_DEFAULTS,
				      w->ccq, det->method, NULL,
				      gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (!uc) {
		details = grpc_slice_from_copied_string(
			"lazypull CRI proxy: cannot call containerd");
		reply(w, gc, NULL, GRPC_STATUS_INTERNAL, details, NULL, NULL);
		replied = true;
		goto out;
	}
	fwd_md = md_pass(in_md, &n_fwd);
	memset(ops, 0, sizeof(ops));
	ops[n].data.send_initial_metadata.count = n_fwd;
	ops[n].data.send_initial_metadata.metadata = fwd_md;
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (req) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = req;
	}
	ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[n++].data.recv_initial_metadata.recv_initial_metadata = &up_md;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &resp;
	ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[n].data.recv_status_on_client.trailing_metadata = &up_trailing;
	ops[n].data.recv_status_on_client.status = &status;
	ops[n].data.recv_status_on_client.status_details = &details;
	n++;
	if (grpc_call_start_batch(uc, ops, n, &tag, NULL) != GRPC_CALL_OK ||
	    !cq_wait(w, w->ccq, &tag)) {
		grpc_slice_unref(details);
		details = grpc_slice_from_copied_string(
			"lazypull CRI proxy: the call to containerd failed");
		status = GRPC_STATUS_UNAVAILABLE;
	}
	if (status == GRPC_STATUS_UNAVAILABLE)
		lp_log_warn("CRI %s: containerd at %s: unavailable (%.*s)",
			    method, p->upstream_path,
			    (int)GRPC_SLICE_LENGTH(details),
			    (const char *)GRPC_SLICE_START_PTR(details));
	reply(w, gc, status == GRPC_STATUS_OK ? resp : NULL, status, details,
	      &up_md, &up_trailing);
	replied = true;
	lp_log_debug("CRI %s: status %d, %llu ms", method, (int)status,
		     (unsigned long long)((lp_mono_ns() - t0) / 1000000));
out:
	/* the close op must come back before the call goes (its tag is the
	 * worker's, reused by the next call): a call never answered is
	 * cancelled so that it does */
	if (close_started && !w->close_done) {
		if (!replied)
			grpc_call_cancel(gc, NULL);
		cq_wait(w, w->cq, &w->close_tag);
	}
	if (close_started && w->cancelled && replied)
		lp_log_info(
			"CRI %s: cancelled by the caller after %llu ms", method,
			(unsigned long long)((lp_mono_ns() - t0) / 1000000));
	if (uc)
		grpc_call_unref(uc);
	free(fwd_md);
	if (req)
		grpc_byte_buffer_destroy(req);
	if (resp)
		grpc_byte_buffer_destroy(resp);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&up_md);
	grpc_metadata_array_destroy(&up_trailing);
}

static void *worker_main(void *arg)
{
	struct cri_worker *w = arg;
	grpc_metadata_array md;
	grpc_call_details det;
	grpc_call *gc;
	int tag_new;

	for (;;) {
		gc = NULL;
		grpc_metadata_array_init(&md);
		grpc_call_details_init(&det);
		if (grpc_server_request_call(w->p->server, &gc, &det, &md,
					     w->cq, w->cq,
					     &tag_new) != GRPC_CALL_OK ||
		    !cq_wait(w, w->cq, &tag_new)) {
			grpc_metadata_array_destroy(&md);
			grpc_call_details_destroy(&det);
			break; /* the server is shutting down */
		}
		lp_grpc_pool_took(w->p->pool);
		serve_call(w, gc, &det, &md);
		lp_grpc_pool_back(w->p->pool);
		grpc_call_unref(gc);
		grpc_metadata_array_destroy(&md);
		grpc_call_details_destroy(&det);
	}
	return NULL;
}

int lp_cri_proxy_start(const char *listen, const char *upstream,
		       unsigned int threads, struct lp_cri_creds *creds,
		       struct lp_cri_proxy **ret, struct lp_err *err)
{
	grpc_channel_credentials *ccreds = NULL;
	grpc_arg args[2];
	grpc_channel_args cargs = { 2, args };
	struct lp_cri_proxy *p = NULL;
	void *wargs[CRI_MAX_WORKERS];
	char uaddr[LP_SNAP_PATH_MAX + 8];
	unsigned int i, n_first;
	int r = 0;

	if (!upstream)
		upstream = LP_CRI_DEFAULT_UPSTREAM;
	if (snprintf(uaddr, sizeof(uaddr), "unix:%s", upstream) >=
	    (int)sizeof(uaddr))
		return lp_err_set(err, -ENAMETOOLONG,
				  "CRI socket path too long");
	if (!strcmp(listen, upstream))
		return lp_err_set(err, -EINVAL,
				  "--cri-listen and --cri-upstream are the "
				  "same socket (%s)",
				  listen);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->upstream_path, sizeof(p->upstream_path), "%s", upstream);
	p->creds = creds;
	n_first = threads ? threads : CRI_DEFAULT_WORKERS;
	if (n_first > CRI_MAX_WORKERS)
		n_first = CRI_MAX_WORKERS;
	for (i = 0; i < CRI_MAX_WORKERS; i++)
		wargs[i] = &p->workers[i];
	r = lp_grpc_pool_new("CRI proxy", CRI_MAX_WORKERS, worker_main, wargs,
			     &p->pool);
	if (r < 0) {
		free(p);
		return lp_err_set(err, r, "CRI proxy workers: %s",
				  strerror(-r));
	}
	grpc_init();
	p->grpc_inited = true;
	lp_grpc_msg_args(args, LP_CRI_FORWARD_MAX);
	/* the channel connects lazily: containerd may start after us */
	ccreds = grpc_insecure_credentials_create();
	p->upstream = grpc_channel_create(uaddr, ccreds, &cargs);
	grpc_channel_credentials_release(ccreds);
	p->server = grpc_server_create(&cargs, NULL);
	p->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(p->server, p->shutdown_cq, NULL);
	for (i = 0; i < CRI_MAX_WORKERS; i++) {
		p->workers[i].p = p;
		p->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		p->workers[i].ccq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(p->server,
						      p->workers[i].cq, NULL);
	}
	/* kubelet runs as root; the socket takes pull credentials in and
	 * hands their effects out: 0600 from its bind on (the proxy starts
	 * before the snapshotter's other threads make files: see umask in
	 * lp_grpc_listen_unix()) */
	r = lp_grpc_listen_unix(p->server, listen, err);
	if (r < 0)
		goto fail;
	r = lp_grpc_pool_grow(p->pool, n_first);
	if (r < 0) {
		lp_err_set(err, r, "CRI proxy threads: %s", strerror(-r));
		goto fail;
	}
	lp_log_info("CRI image-service proxy on %s, forwarding to %s", listen,
		    upstream);
	*ret = p;
	return 0;
fail:
	lp_cri_proxy_stop(p);
	return r;
}

void lp_cri_proxy_stop(struct lp_cri_proxy *p)
{
	unsigned int i;
	int tag;

	if (!p)
		return;
	/* from here no worker starts */
	lp_grpc_pool_close(p->pool);
	grpc_server_shutdown_and_notify(p->server, p->shutdown_cq, &tag);
	grpc_server_cancel_all_calls(p->server);
	grpc_completion_queue_pluck(p->shutdown_cq, &tag,
				    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	lp_grpc_pool_free(p->pool);
	grpc_server_destroy(p->server);
	for (i = 0; i < CRI_MAX_WORKERS; i++) {
		lp_grpc_drain(p->workers[i].cq);
		lp_grpc_drain(p->workers[i].ccq);
	}
	lp_grpc_drop_pluck(p->shutdown_cq);
	if (p->upstream)
		grpc_channel_destroy(p->upstream);
	if (p->grpc_inited)
		grpc_shutdown();
	free(p);
}
