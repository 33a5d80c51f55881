// SPDX-License-Identifier: Apache-2.0
/*
 * Prometheus metrics of the snapshotter, served as text over HTTP with
 * libmicrohttpd (GET /metrics): gRPC requests by method and status code
 * with a latency histogram, remote mounts and their duration, fallbacks to
 * the plain path by reason, and per mounted layer what fs/ reports (bytes
 * fetched, prefetch and background progress, an on-demand fetch latency
 * histogram, cache hits and sizes, verification and fetch errors, FUSE
 * requests by operation). Each layer's stats JSON is parsed once per scrape
 * and then rendered family by family (the text format wants a family's
 * samples together).
 *
 * Lock order: m->lock is the innermost lock of the module; rendering takes
 * the layer pool's lock first (lp_snap_layers_stats, released before
 * m->lock is taken).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "snap_int.h"

#define METRICS_MAX (4 * 1024 * 1024) /* bytes of one exposition */
#define HOST_MAX 256

static const double rpc_buckets[] = { 0.001, 0.005, 0.01, 0.05, 0.1,
				      0.5,   1,	    5,	  30 };
#define N_BUCKETS LP_ARRAY_SIZE(rpc_buckets)

struct lp_snap_metrics {
	pthread_mutex_t lock;
	uint64_t fallbacks[LP_FALLBACK_COUNT]; /* protected by lock */
	uint64_t remote_ok, remote_failed; /* protected by lock */
	uint64_t remote_ns; /* protected by lock */
	uint64_t indexed; /* of remote_ok, through a gzip index; lock */
	/* prefetch profile lookups by result; protected by lock */
	uint64_t profiles[LP_SNAP_PROFILE_RESULT_COUNT];
	/* gzip index mounts by trust (lp_index_trust_name()); lock */
	uint64_t index_trust[LP_INDEX_TRUST_NR];
	uint64_t rpc_codes[LP_RPC_COUNT][LP_GRPC_CODES]; /* protected by lock */
	uint64_t rpc_bucket[LP_RPC_COUNT][N_BUCKETS]; /* protected by lock */
	uint64_t rpc_ns[LP_RPC_COUNT]; /* protected by lock */
	uint64_t rpc_total[LP_RPC_COUNT]; /* protected by lock */
	struct MHD_Daemon *mhd; /* set once before serving */
	struct lp_snap_layers *layers; /* borrowed, for the server */
};

static const char *const fallback_names[LP_FALLBACK_COUNT] = {
	[LP_FALLBACK_NO_LABELS] = "no_labels",
	[LP_FALLBACK_NO_TOC_DIGEST] = "no_toc_digest",
	[LP_FALLBACK_BAD_LABELS] = "bad_labels",
	[LP_FALLBACK_REGISTRY] = "registry",
	[LP_FALLBACK_NOT_LAZY] = "not_lazy",
	[LP_FALLBACK_MOUNT] = "mount",
	[LP_FALLBACK_NO_INDEX] = "no_index",
	[LP_FALLBACK_ZSTD_UNINDEXED] = "zstd_unindexed",
	[LP_FALLBACK_BAD_INDEX] = "bad_index",
	[LP_FALLBACK_INDEX_TIMEOUT] = "index_timeout",
};

static const char *const rpc_names[LP_RPC_COUNT] = {
	[LP_RPC_PREPARE] = "Prepare", [LP_RPC_VIEW] = "View",
	[LP_RPC_MOUNTS] = "Mounts",   [LP_RPC_COMMIT] = "Commit",
	[LP_RPC_REMOVE] = "Remove",   [LP_RPC_STAT] = "Stat",
	[LP_RPC_UPDATE] = "Update",   [LP_RPC_LIST] = "List",
	[LP_RPC_USAGE] = "Usage",     [LP_RPC_CLEANUP] = "Cleanup",
};

const char *lp_snap_fallback_name(enum lp_snap_fallback f)
{
	return (unsigned int)f < LP_FALLBACK_COUNT ? fallback_names[f] : "?";
}

const char *lp_snap_rpc_name(enum lp_snap_rpc rpc)
{
	return (unsigned int)rpc < LP_RPC_COUNT ? rpc_names[rpc] : "?";
}

int lp_snap_metrics_new(struct lp_snap_metrics **ret_m)
{
	struct lp_snap_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*ret_m = m;
	return 0;
}

void lp_snap_metrics_stop(struct lp_snap_metrics *m)
{
	if (m && m->mhd) {
		MHD_stop_daemon(m->mhd);
		m->mhd = NULL;
	}
}

void lp_snap_metrics_free(struct lp_snap_metrics *m)
{
	if (!m)
		return;
	lp_snap_metrics_stop(m);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void lp_snap_metrics_fallback(struct lp_snap_metrics *m,
			      enum lp_snap_fallback f)
{
	if ((unsigned int)f >= LP_FALLBACK_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	m->fallbacks[f]++;
	pthread_mutex_unlock(&m->lock);
}

void lp_snap_metrics_remote(struct lp_snap_metrics *m, bool ok,
			    uint64_t mount_ns)
{
	pthread_mutex_lock(&m->lock);
	if (ok) {
		m->remote_ok++;
		m->remote_ns += mount_ns;
	} else {
		m->remote_failed++;
	}
	pthread_mutex_unlock(&m->lock);
}

void lp_snap_metrics_indexed(struct lp_snap_metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->indexed++;
	pthread_mutex_unlock(&m->lock);
}

void lp_snap_metrics_index_trust(struct lp_snap_metrics *m,
				 enum lp_index_trust t)
{
	if ((unsigned int)t >= LP_INDEX_TRUST_NR)
		return;
	pthread_mutex_lock(&m->lock);
	m->index_trust[t]++;
	pthread_mutex_unlock(&m->lock);
}

static const char *const profile_names[LP_SNAP_PROFILE_RESULT_COUNT] = {
	[LP_SNAP_PROFILE_APPLIED] = "applied",
	[LP_SNAP_PROFILE_OTHER_LAYERS] = "other_layers",
	[LP_SNAP_PROFILE_NONE] = "none",
	[LP_SNAP_PROFILE_INVALID] = "invalid",
	[LP_SNAP_PROFILE_UNREACHABLE] = "unreachable",
};

void lp_snap_metrics_profile(struct lp_snap_metrics *m,
			     enum lp_snap_profile_result res)
{
	if (res >= LP_SNAP_PROFILE_RESULT_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	m->profiles[res]++;
	pthread_mutex_unlock(&m->lock);
}

void lp_snap_metrics_rpc(struct lp_snap_metrics *m, enum lp_snap_rpc rpc,
			 unsigned int code, uint64_t ns)
{
	double s = (double)ns / 1e9;
	size_t b;

	if ((unsigned int)rpc >= LP_RPC_COUNT)
		return;
	if (code >= LP_GRPC_CODES)
		code = 2; /* UNKNOWN */
	pthread_mutex_lock(&m->lock);
	m->rpc_codes[rpc][code]++;
	for (b = 0; b < N_BUCKETS; b++)
		if (s <= rpc_buckets[b])
			m->rpc_bucket[rpc][b]++;
	m->rpc_ns[rpc] += ns;
	m->rpc_total[rpc]++;
	pthread_mutex_unlock(&m->lock);
}

static uint64_t jget(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, a, &v))
		return 0;
	if (b && !json_object_object_get_ex(v, b, &v))
		return 0;
	return (uint64_t)json_object_get_int64(v);
}

/* every mounted layer's stats, parsed once per scrape */
struct layer_snap {
	char digest[LP_DIGEST_STR_LEN + 1];
	struct json_object *o; /* owned */
};

struct layer_set {
	struct layer_snap *v;
	size_t n, alloc;
};

static const struct {
	const char *name, *help, *type, *a, *b;
	double scale;
} layer_metrics[] = {
	{ "lazypull_layer_blob_bytes", "Compressed size of the layer blob.",
	  "gauge", "blob_bytes", NULL, 1 },
	{ "lazypull_layer_fetched_bytes_total",
	  "Compressed bytes fetched from the registry.", "counter",
	  "fetched_bytes", NULL, 1 },
	{ "lazypull_layer_fetched_chunks_total", "Chunks fetched.", "counter",
	  "fetched_chunks", NULL, 1 },
	{ "lazypull_layer_chunks", "Chunks in the layer.", "gauge",
	  "total_chunks", NULL, 1 },
	{ "lazypull_layer_blob_reads_total", "Range reads of the blob.",
	  "counter", "blob_reads", NULL, 1 },
	{ "lazypull_layer_prefetch_done_bytes", "Bytes prefetched.", "gauge",
	  "prefetch", "done_bytes", 1 },
	{ "lazypull_layer_background_done_bytes",
	  "Bytes fetched in the background.", "gauge", "background",
	  "done_bytes", 1 },
	{ "lazypull_layer_on_demand_fetch_seconds_max",
	  "Longest on-demand fetch.", "gauge", "on_demand", "latency_ns_max",
	  1e-9 },
	{ "lazypull_layer_cache_memory_hits_total", "Memory cache hits.",
	  "counter", "cache", "memory_hits", 1 },
	{ "lazypull_layer_cache_disk_hits_total", "Disk cache hits.", "counter",
	  "cache", "disk_hits", 1 },
	{ "lazypull_layer_cache_misses_total",
	  "Chunks fetched because no cache had them.", "counter",
	  "fetched_chunks", NULL, 1 },
	{ "lazypull_layer_cache_memory_bytes", "Memory cache size.", "gauge",
	  "cache", "memory_bytes", 1 },
	{ "lazypull_layer_verify_failures_total",
	  "Chunks that failed digest verification.", "counter", "errors",
	  "verify_failures", 1 },
	{ "lazypull_layer_fetch_errors_total", "Failed blob reads.", "counter",
	  "errors", "fetch_errors", 1 },
};

static struct json_object *jobj(struct json_object *o, const char *a,
				const char *b)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return v;
}

static int collect_layer(void *opaque, const char *digest, const char *json)
{
	struct layer_set *set = opaque;
	struct json_object *o = json_tokener_parse(json);

	if (!o)
		return 0; /* cannot happen: fs/ wrote it; skip the layer */
	if (set->n == set->alloc) {
		size_t alloc = set->alloc ? 2 * set->alloc : 16;
		struct layer_snap *v = realloc(set->v, alloc * sizeof(*v));

		if (!v) {
			json_object_put(o);
			return -ENOMEM;
		}
		set->v = v;
		set->alloc = alloc;
	}
	snprintf(set->v[set->n].digest, sizeof(set->v[set->n].digest), "%s",
		 digest);
	set->v[set->n++].o = o;
	return 0;
}

static void layer_set_release(struct layer_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		json_object_put(set->v[i].o);
	free(set->v);
}

/* lazypull_layer_on_demand_fetch_seconds: one histogram per layer from the
 * bucket bounds and cumulative counts fs/ reports; _count is the +Inf
 * bucket, so the two always agree */
static int render_latency_histogram(const struct layer_set *set,
				    struct lp_buf *out)
{
	size_t i, b, nb;
	int r;

	r = lp_buf_printf(
		out,
		"# HELP lazypull_layer_on_demand_fetch_seconds Time readers "
		"waited for on-demand fetches.\n"
		"# TYPE lazypull_layer_on_demand_fetch_seconds histogram\n");
	for (i = 0; i < set->n && !r; i++) {
		struct json_object *le =
			jobj(set->v[i].o, "on_demand", "latency_le_ns");
		struct json_object *cum =
			jobj(set->v[i].o, "on_demand", "latency_cumulative");
		const char *d = set->v[i].digest;
		uint64_t total;

		if (!le || !cum || !json_object_is_type(le, json_type_array) ||
		    !json_object_is_type(cum, json_type_array))
			continue;
		nb = json_object_array_length(le);
		if (json_object_array_length(cum) != nb + 1)
			continue;
		for (b = 0; b < nb && !r; b++)
			r = lp_buf_printf(
				out,
				"lazypull_layer_on_demand_fetch_seconds_bucket"
				"{layer=\"%s\",le=\"%g\"} %llu\n",
				d,
				(double)json_object_get_int64(
					json_object_array_get_idx(le, b)) *
					1e-9,
				(unsigned long long)json_object_get_int64(
					json_object_array_get_idx(cum, b)));
		total = (uint64_t)json_object_get_int64(
			json_object_array_get_idx(cum, nb));
		if (!r)
			r = lp_buf_printf(
				out,
				"lazypull_layer_on_demand_fetch_seconds_bucket"
				"{layer=\"%s\",le=\"+Inf\"} %llu\n"
				"lazypull_layer_on_demand_fetch_seconds_sum"
				"{layer=\"%s\"} %.9f\n"
				"lazypull_layer_on_demand_fetch_seconds_count"
				"{layer=\"%s\"} %llu\n",
				d, (unsigned long long)total, d,
				(double)json_object_get_int64(
					jobj(set->v[i].o, "on_demand",
					     "latency_ns_total")) *
					1e-9,
				d, (unsigned long long)total);
	}
	return r;
}

/* lazypull_layer_fuse_ops_total{layer,op} from the stats' fuse_ops */
static int render_fuse_ops(const struct layer_set *set, struct lp_buf *out)
{
	size_t i;
	int r;

	r = lp_buf_printf(out,
			  "# HELP lazypull_layer_fuse_ops_total FUSE "
			  "requests served, by operation.\n"
			  "# TYPE lazypull_layer_fuse_ops_total counter\n");
	for (i = 0; i < set->n && !r; i++) {
		struct json_object *ops = jobj(set->v[i].o, "fuse_ops", NULL);

		if (!ops || !json_object_is_type(ops, json_type_object))
			continue;
		json_object_object_foreach(ops, op, v)
		{
			if (r)
				break;
			r = lp_buf_printf(
				out,
				"lazypull_layer_fuse_ops_total{layer="
				"\"%s\",op=\"%s\"} %llu\n",
				set->v[i].digest, op,
				(unsigned long long)json_object_get_int64(v));
		}
	}
	return r;
}

static int render_layers(struct lp_snap_layers *layers, struct lp_buf *out)
{
	struct layer_set set = { 0 };
	size_t i, k;
	int r = 0;

	if (layers)
		r = lp_snap_layers_stats(layers, collect_layer, &set);
	for (k = 0; k < LP_ARRAY_SIZE(layer_metrics) && !r; k++) {
		r = lp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
				  layer_metrics[k].name, layer_metrics[k].help,
				  layer_metrics[k].name, layer_metrics[k].type);
		for (i = 0; i < set.n && !r; i++) {
			uint64_t v = jget(set.v[i].o, layer_metrics[k].a,
					  layer_metrics[k].b);

			if (layer_metrics[k].scale == 1)
				r = lp_buf_printf(
					out, "%s{layer=\"%s\"} %llu\n",
					layer_metrics[k].name, set.v[i].digest,
					(unsigned long long)v);
			else
				r = lp_buf_printf(
					out, "%s{layer=\"%s\"} %.9f\n",
					layer_metrics[k].name, set.v[i].digest,
					(double)v * layer_metrics[k].scale);
		}
	}
	if (!r)
		r = render_latency_histogram(&set, out);
	if (!r)
		r = render_fuse_ops(&set, out);
	layer_set_release(&set);
	return r;
}

int lp_snap_metrics_render(struct lp_snap_metrics *m,
			   struct lp_snap_layers *layers, struct lp_buf *out)
{
	size_t i, b;
	int r;

	r = render_layers(layers, out);
	if (r)
		return r;

	pthread_mutex_lock(&m->lock);
	r = lp_buf_printf(out,
			  "# HELP lazypull_fallbacks_total Layers that took "
			  "the plain (non-lazy) path, by reason.\n"
			  "# TYPE lazypull_fallbacks_total counter\n");
	for (i = 0; i < LP_FALLBACK_COUNT && !r; i++)
		r = lp_buf_printf(out,
				  "lazypull_fallbacks_total{reason=\"%s\"} "
				  "%llu\n",
				  fallback_names[i],
				  (unsigned long long)m->fallbacks[i]);
	if (!r)
		r = lp_buf_printf(
			out,
			"# HELP lazypull_remote_mounts_total Lazy layer "
			"mounts by result.\n"
			"# TYPE lazypull_remote_mounts_total counter\n"
			"lazypull_remote_mounts_total{result=\"ok\"} %llu\n"
			"lazypull_remote_mounts_total{result=\"failed\"} "
			"%llu\n"
			"# HELP lazypull_index_mounts_total Lazy layer mounts "
			"of plain gzip layers through a gzip index (of the "
			"ok ones).\n"
			"# TYPE lazypull_index_mounts_total counter\n"
			"lazypull_index_mounts_total %llu\n"
			"# HELP lazypull_remote_mount_seconds_total Time "
			"spent mounting layers (TOC fetch, verify, mount).\n"
			"# TYPE lazypull_remote_mount_seconds_total counter\n"
			"lazypull_remote_mount_seconds_total %.6f\n",
			(unsigned long long)m->remote_ok,
			(unsigned long long)m->remote_failed,
			(unsigned long long)m->indexed,
			(double)m->remote_ns / 1e9);
	if (!r)
		r = lp_buf_printf(out,
				  "# HELP lazypull_profile_lookups_total "
				  "Prefetch profile lookups of lazily mounted "
				  "layers, by result.\n"
				  "# TYPE lazypull_profile_lookups_total "
				  "counter\n");
	for (i = 0; i < LP_SNAP_PROFILE_RESULT_COUNT && !r; i++)
		r = lp_buf_printf(
			out,
			"lazypull_profile_lookups_total{result=\"%s\"} "
			"%llu\n",
			profile_names[i], (unsigned long long)m->profiles[i]);
	if (!r)
		r = lp_buf_printf(out, "# HELP lazypull_index_trust_total Gzip "
				       "index mounts by what their signature "
				       "made of them (signed: trusted).\n"
				       "# TYPE lazypull_index_trust_total "
				       "counter\n");
	for (i = 0; i < LP_INDEX_TRUST_NR && !r; i++)
		r = lp_buf_printf(out,
				  "lazypull_index_trust_total{result=\"%s\"} "
				  "%llu\n",
				  lp_index_trust_name((enum lp_index_trust)i),
				  (unsigned long long)m->index_trust[i]);
	if (!r)
		r = lp_buf_printf(
			out, "# HELP lazypull_grpc_requests_total Snapshots "
			     "API requests by method and gRPC status "
			     "code.\n"
			     "# TYPE lazypull_grpc_requests_total counter\n");
	for (i = 0; i < LP_RPC_COUNT && !r; i++)
		for (b = 0; b < LP_GRPC_CODES && !r; b++)
			if (m->rpc_codes[i][b])
				r = lp_buf_printf(
					out,
					"lazypull_grpc_requests_total{method="
					"\"%s\",code=\"%zu\"} %llu\n",
					rpc_names[i], b,
					(unsigned long long)m->rpc_codes[i][b]);
	if (!r)
		r = lp_buf_printf(out, "# HELP lazypull_grpc_request_seconds "
				       "Snapshots API request latency.\n"
				       "# TYPE lazypull_grpc_request_seconds "
				       "histogram\n");
	for (i = 0; i < LP_RPC_COUNT && !r; i++) {
		if (!m->rpc_total[i])
			continue;
		for (b = 0; b < N_BUCKETS && !r; b++)
			r = lp_buf_printf(
				out,
				"lazypull_grpc_request_seconds_bucket"
				"{method=\"%s\",le=\"%g\"} %llu\n",
				rpc_names[i], rpc_buckets[b],
				(unsigned long long)m->rpc_bucket[i][b]);
		if (!r)
			r = lp_buf_printf(
				out,
				"lazypull_grpc_request_seconds_bucket{method="
				"\"%s\",le=\"+Inf\"} %llu\n"
				"lazypull_grpc_request_seconds_sum{method="
				"\"%s\"} %.6f\n"
				"lazypull_grpc_request_seconds_count{method="
				"\"%s\"} %llu\n",
				rpc_names[i],
				(unsigned long long)m->rpc_total[i],
				rpc_names[i], (double)m->rpc_ns[i] / 1e9,
				rpc_names[i],
				(unsigned long long)m->rpc_total[i]);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct lp_snap_metrics *m = cls;
	struct MHD_Response *resp;
	struct lp_buf b;
	unsigned int status = MHD_HTTP_OK;
	enum MHD_Result ret;

	lp_buf_init(&b, METRICS_MAX);
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		lp_buf_printf(&b, "method not allowed\n");
	} else if (strcmp(url, "/metrics")) {
		status = MHD_HTTP_NOT_FOUND;
		lp_buf_printf(&b, "try /metrics\n");
	} else if (lp_snap_metrics_render(m, m->layers, &b) < 0) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		lp_buf_reset(&b);
		lp_buf_printf(&b, "cannot render metrics\n");
	}
	resp = MHD_create_response_from_buffer(
		b.len, b.data ? (void *)b.data : (void *)"",
		MHD_RESPMEM_MUST_COPY);
	lp_buf_release(&b);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

int lp_snap_metrics_serve(struct lp_snap_metrics *m, const char *addr,
			  struct lp_snap_layers *layers, struct lp_err *err)
{
	struct sockaddr_in sa = { 0 };
	char host[HOST_MAX];
	const char *colon = strrchr(addr, ':');
	sigset_t all, old;
	char *end;
	long port;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return lp_err_set(err, -EINVAL,
				  "metrics address '%s': want HOST:PORT", addr);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return lp_err_set(err, -EINVAL,
				  "metrics address '%s': bad "
				  "port",
				  addr);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (!*host || !strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return lp_err_set(err, -EINVAL,
				  "metrics address '%s': want an IPv4 address",
				  addr);
	m->layers = layers;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	m->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
		on_request, m, MHD_OPTION_SOCK_ADDR, &sa,
		MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!m->mhd)
		return lp_err_set(err, -EADDRINUSE,
				  "cannot serve metrics on %s", addr);
	return 0;
}
