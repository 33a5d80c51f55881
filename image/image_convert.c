// SPDX-License-Identifier: Apache-2.0
/*
 * Image conversion (lp_image.h): resolve the source image's manifests and
 * configs, convert its distinct layers on a bounded pool of worker threads,
 * then write blobs, configs, manifests and finally the tag.
 *
 * Each layer is streamed: a pump reads the source blob in blocks, hashes
 * every byte and feeds a pipe that lp_convert_layer() reads; the converted
 * blob lands in a private temporary directory. Only when the pump's digest
 * matches the descriptor (and every other layer succeeded) is the result
 * used. Layers already in the wanted format (TOC digest annotation present)
 * are copied instead, see reuse_layer().
 *
 * Lock order: conv.lock is the only lock. Per-layer progress fields are
 * atomics written by the layer's worker and read by the caller's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <json-c/json.h>

#include "lp_io.h"
#include "lp_common.h"
#include "lp_image.h"
#include "lp_layer.h"
#include "store_int.h"

#define PUMP_BLOCK (8 * 1024 * 1024) /* one source read (a Range GET) */
#define PIPE_SIZE (1024 * 1024) /* asked for; the kernel may give less */
#define DEFAULT_JOBS 2
#define PROGRESS_INTERVAL_MS 250
#define NUM_STR_MAX 96 /* a decimal or "a:b:c:1" annotation value */

#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

enum src_compression { SRC_NONE, SRC_GZIP, SRC_ZSTD };

/* layer media types we convert, and what they hold */
static const struct {
	const char *media_type;
	enum src_compression comp;
} layer_types[] = {
	{ "application/vnd.oci.image.layer.v1.tar", SRC_NONE },
	{ MT_OCI_LAYER_GZIP, SRC_GZIP },
	{ MT_OCI_LAYER_ZSTD, SRC_ZSTD },
	{ "application/vnd.docker.image.rootfs.diff.tar", SRC_NONE },
	{ "application/vnd.docker.image.rootfs.diff.tar.gzip", SRC_GZIP },
	{ "application/vnd.docker.image.rootfs.diff.tar.zstd", SRC_ZSTD },
};

/* one distinct source layer and what became of it */
struct job {
	/* set up by the caller's thread before the workers start */
	struct lp_reg_desc src; /* media_type points to media_type below */
	char *media_type;
	char *ann_toc, *ann_usize, *ann_zck, *ann_zpos; /* NULL: absent */
	struct lp_digest src_diff_id; /* from the first config naming it */
	size_t index; /* its index in the first image that has it */
	const char **prio; /* borrowed strings */
	size_t nr_prio;
	bool reuse;
	char dir[PATH_MAX];
	char out_path[PATH_MAX];

	/* progress: written by the worker, read by the caller's thread */
	_Atomic int state; /* enum lp_image_layer_state; release/acquire */
	_Atomic uint64_t bytes_in;
	_Atomic int64_t t_start_ms, t_end_ms;

	/* result: written by the worker before state leaves RUNNING */
	struct lp_convert_result res;
	char zck[LP_DIGEST_STR_LEN + 1]; /* annotation values to write */
	char zpos[NUM_STR_MAX];
	int r;
	struct lp_err err;
};

/* one platform's image */
struct img {
	struct lp_reg_manifest *m;
	size_t index_pos; /* its entry in the source index */
	char *config;
	size_t config_len;
	json_object *config_json;
	size_t *job_of; /* per layer */
	char *out_config; /* serialised; freed by json-c? no: strdup'ed */
	size_t out_config_len;
	struct lp_digest out_config_digest;
	char *out_manifest;
	size_t out_manifest_len;
	struct lp_digest out_manifest_digest;
};

struct conv {
	const struct lp_image_opts *o;
	struct lp_err *err;
	struct lp_reg *reg;
	struct lp_img_store *src, *dst;
	struct lp_reg_manifest *top;
	struct img *imgs;
	size_t n_imgs;
	struct job *jobs;
	size_t n_jobs;
	char tmpdir[PATH_MAX]; /* "" until made */
	int64_t t0_ms;
	unsigned int threads_per_job;
	struct lp_image_layer_progress *snap;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next_job; /* protected by lock */
	size_t workers_done; /* protected by lock */
	atomic_bool cancel; /* a layer failed: start no more, stop pumps */
};

static enum lp_layer_format want_format(const struct conv *cv)
{
	return cv->o->convert.format;
}

static const char *out_media_type(enum lp_layer_format f)
{
	return f == LP_FMT_ZSTD_CHUNKED ? MT_OCI_LAYER_ZSTD : MT_OCI_LAYER_GZIP;
}

void lp_image_opts_init(struct lp_image_opts *o)
{
	memset(o, 0, sizeof(*o));
	lp_convert_opts_init(&o->convert);
	lp_reg_opts_init(&o->reg);
}

/* ---- the pump: source blob -> hash -> pipe or file ---- */

struct pump {
	struct job *job;
	struct lp_blob *blob;
	const char *src_name;
	int fd; /* the pipe's write end (closed here) or a file */
	bool is_pipe;
	atomic_bool stop; /* the reader gave up: stop early */
	atomic_bool *cancel;
	int r;
	struct lp_err err;
};

static void *pump_main(void *arg)
{
	struct pump *p = arg;
	struct job *j = p->job;
	struct lp_sha256 *sha = NULL;
	struct lp_digest got;
	char ds[LP_DIGEST_STR_LEN + 1], gs[LP_DIGEST_STR_LEN + 1];
	uint64_t off = 0, size = j->src.size;
	bool reader_gone = false;
	uint8_t *buf = NULL;
	int r;

	lp_digest_format(&j->src.digest, ds);
	buf = malloc(PUMP_BLOCK);
	r = lp_sha256_new(&sha);
	if (!buf || r < 0) {
		r = -ENOMEM;
		goto out;
	}
	while (off < size) {
		size_t n = (size_t)lp_min_u64(PUMP_BLOCK, size - off);
		struct lp_err why = { 0 };

		if (atomic_load(p->cancel) || atomic_load(&p->stop)) {
			r = -ECANCELED;
			goto out;
		}
		r = lp_blob_pread(p->blob, buf, n, off, &why);
		if (r < 0) {
			lp_err_set_from(&p->err, &why, r,
					"%s: layer %s: reading at offset %llu: "
					"%s",
					p->src_name, ds,
					(unsigned long long)off,
					r == -ERANGE ? "shorter than its "
						       "descriptor says" :
						       lp_err_str(&why, r));
			goto out;
		}
		lp_sha256_update(sha, buf, n);
		if (!reader_gone) {
			r = lp_write_all(p->fd, buf, n);
			/*
			 * The converter may stop before the end (tar
			 * end-of-archive, padding): keep hashing, the whole
			 * blob must still match its digest.
			 */
			if (r == -EPIPE && p->is_pipe) {
				reader_gone = true;
			} else if (r < 0) {
				lp_err_set(&p->err, r, "layer %s: writing: %s",
					   ds, strerror(-r));
				goto out;
			}
		}
		off += n;
		atomic_store(&j->bytes_in, off);
	}
	lp_sha256_final(sha, &got);
	if (!lp_digest_equal(&got, &j->src.digest)) {
		lp_digest_format(&got, gs);
		r = lp_err_set(&p->err, -EBADMSG,
			       "%s: layer %s: digest mismatch, the %llu bytes "
			       "served hash to %s",
			       p->src_name, ds, (unsigned long long)size, gs);
		goto out;
	}
	r = 0;
out:
	if (p->is_pipe && p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	lp_sha256_free(sha);
	free(buf);
	p->r = r;
	return NULL;
}

/* ---- one layer ---- */

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

/*
 * reuse_layer() - the layer is already in the wanted format: copy it.
 * Trust-but-verify: the copy is checked against the blob digest (the pump)
 * and its TOC against the toc.digest annotation with lp_layer_open() on the
 * fetched file, so a mislabelled blob is an error, not a silent reuse. The
 * diff-id and uncompressed size are taken from the source config and
 * annotation without decompressing the blob (the TOC digest ties the
 * layer's content to what the annotation promises; a wrong diff-id would
 * make the image unpullable in the old way, as it already was).
 */
static int reuse_layer(struct conv *cv, struct job *j, struct lp_blob *src,
		       struct lp_err *err)
{
	struct pump p = { .job = j, .blob = src, .is_pipe = false };
	struct lp_blob *fb = NULL;
	struct lp_layer *layer = NULL;
	struct lp_digest toc;
	char ds[LP_DIGEST_STR_LEN + 1];
	int r;

	lp_digest_format(&j->src.digest, ds);
	p.src_name = lp_img_store_name(cv->src);
	p.cancel = &cv->cancel;
	p.fd = open(j->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
	if (p.fd < 0)
		return lp_err_set(err, -errno, "%s: %s", j->out_path,
				  strerror(errno));
	pump_main(&p);
	close(p.fd);
	r = p.r;
	if (r < 0) {
		lp_err_set(err, r, "%s", lp_err_str(&p.err, r));
		goto out;
	}
	lp_digest_parse(j->ann_toc, &toc);
	r = lp_blob_open_file(j->out_path, &fb);
	if (r == 0)
		r = lp_layer_open(fb, &toc, &layer, &p.err);
	if (r == 0 && lp_layer_format(layer) != want_format(cv))
		r = lp_err_set(&p.err, -EINVAL, "its format is %s",
			       lp_format_name(lp_layer_format(layer)));
	if (r < 0) {
		lp_err_set(err, r,
			   "layer %s is annotated as %s with TOC digest %s, "
			   "but it does not verify: %s",
			   ds, lp_format_name(want_format(cv)), j->ann_toc,
			   lp_err_str(&p.err, r));
		goto out;
	}
	j->res.toc_digest = toc;
	j->res.diff_id = j->src_diff_id;
	j->res.blob_digest = j->src.digest;
	j->res.size = j->src.size;
	parse_u64(j->ann_usize, &j->res.uncompressed_size);
	if (j->ann_zck)
		snprintf(j->zck, sizeof(j->zck), "%s", j->ann_zck);
	if (j->ann_zpos)
		snprintf(j->zpos, sizeof(j->zpos), "%s", j->ann_zpos);
out:
	lp_layer_free(layer);
	lp_blob_unref(fb);
	return r;
}

static int convert_layer(struct conv *cv, struct job *j, struct lp_blob *src,
			 struct lp_err *err)
{
	struct pump p = { .job = j, .blob = src, .is_pipe = true };
	struct lp_convert_opts co = cv->o->convert;
	struct lp_err cerr = { 0 };
	char ds[LP_DIGEST_STR_LEN + 1];
	pthread_t th;
	int fds[2] = { -1, -1 }, r, pr;

	lp_digest_format(&j->src.digest, ds);
	p.src_name = lp_img_store_name(cv->src);
	p.cancel = &cv->cancel;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return lp_err_set(err, -errno, "pipe: %s", strerror(errno));
	(void)fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE); /* best effort */
	p.fd = fds[1];
	r = pthread_create(&th, NULL, pump_main, &p);
	if (r) {
		close(fds[0]);
		close(fds[1]);
		return lp_err_set(err, -r, "pthread_create: %s", strerror(r));
	}
	co.threads = cv->threads_per_job;
	co.prioritized = j->prio;
	co.nr_prioritized = j->nr_prio;
	r = lp_convert_layer(fds[0], j->out_path, &co, &j->res, &cerr);
	if (r < 0)
		atomic_store(&p.stop, true);
	close(fds[0]); /* a pump still writing gets EPIPE and only hashes */
	pthread_join(th, NULL);
	pr = p.r;
	if (pr == -ECANCELED && atomic_load(&cv->cancel)) {
		r = lp_err_set(err, -ECANCELED, "layer %s: cancelled", ds);
		goto out;
	}
	/* a failed read explains a truncated tar stream: it comes first */
	if (pr < 0 && pr != -ECANCELED) {
		r = lp_err_set(err, pr, "%s", lp_err_str(&p.err, pr));
		goto out;
	}
	if (r < 0) {
		lp_err_set(err, r, "%s: layer %s (%s, layer %zu): %s",
			   lp_img_store_name(cv->src), ds, j->src.media_type,
			   j->index, lp_err_str(&cerr, r));
		goto out;
	}
	if (co.format == LP_FMT_ZSTD_CHUNKED) {
		lp_digest_format(&j->res.manifest_checksum, j->zck);
		snprintf(j->zpos, sizeof(j->zpos), "%llu:%llu:%llu:1",
			 (unsigned long long)j->res.toc_offset,
			 (unsigned long long)j->res.toc_compressed_size,
			 (unsigned long long)j->res.toc_uncompressed_size);
	}
out:
	return r;
}

static int run_job(struct conv *cv, struct job *j)
{
	struct lp_blob *src = NULL;
	int r;

	atomic_store(&j->t_start_ms, (int64_t)lp_mono_ms());
	atomic_store_explicit(&j->state, LP_IMAGE_LAYER_RUNNING,
			      memory_order_release);
	if (mkdir(j->dir, 0700) < 0) {
		r = lp_err_set(&j->err, -errno, "%s: %s", j->dir,
			       strerror(errno));
		goto out;
	}
	r = lp_img_store_open_blob(cv->src, &j->src, &src, &j->err);
	if (r < 0)
		goto out;
	if (j->reuse)
		r = reuse_layer(cv, j, src, &j->err);
	else
		r = convert_layer(cv, j, src, &j->err);
out:
	lp_blob_unref(src);
	j->r = r;
	atomic_store(&j->t_end_ms, (int64_t)lp_mono_ms());
	atomic_store_explicit(&j->state,
			      r < 0    ? LP_IMAGE_LAYER_FAILED :
			      j->reuse ? LP_IMAGE_LAYER_REUSED :
					 LP_IMAGE_LAYER_CONVERTED,
			      memory_order_release);
	if (r < 0)
		atomic_store(&cv->cancel, true);
	return r;
}

static void *worker_main(void *arg)
{
	struct conv *cv = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&cv->lock);
		i = cv->next_job++;
		pthread_mutex_unlock(&cv->lock);
		if (i >= cv->n_jobs || atomic_load(&cv->cancel))
			break;
		run_job(cv, &cv->jobs[i]);
	}
	pthread_mutex_lock(&cv->lock);
	cv->workers_done++;
	pthread_cond_signal(&cv->cond);
	pthread_mutex_unlock(&cv->lock);
	return NULL;
}

/* ---- progress ---- */

/* bytes the converter has written so far: its temporary file in j->dir */
static uint64_t dir_bytes(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat sb;
	uint64_t sum = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
			    (int)sizeof(path) &&
		    stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			sum += (uint64_t)sb.st_size;
	}
	closedir(d);
	return sum;
}

static void report(struct conv *cv, enum lp_image_phase phase)
{
	struct lp_image_progress p = { .phase = phase };
	int64_t now = (int64_t)lp_mono_ms();
	size_t i;

	if (!cv->o->progress)
		return;
	for (i = 0; i < cv->n_jobs; i++) {
		struct job *j = &cv->jobs[i];
		struct lp_image_layer_progress *s = &cv->snap[i];
		int st = atomic_load_explicit(&j->state, memory_order_acquire);
		int64_t t0 = atomic_load(&j->t_start_ms);
		int64_t t1 = atomic_load(&j->t_end_ms);

		lp_digest_format(&j->src.digest, s->digest);
		s->state = (enum lp_image_layer_state)st;
		s->size_in = j->src.size;
		s->bytes_in = atomic_load(&j->bytes_in);
		if (st == LP_IMAGE_LAYER_CONVERTED ||
		    st == LP_IMAGE_LAYER_REUSED)
			s->bytes_out = j->res.size;
		else if (st == LP_IMAGE_LAYER_RUNNING && !j->reuse)
			s->bytes_out = dir_bytes(j->dir);
		else if (st == LP_IMAGE_LAYER_RUNNING)
			s->bytes_out = s->bytes_in;
		else
			s->bytes_out = 0;
		s->seconds = !t0 ? 0 : ((t1 ? t1 : now) - t0) / 1000.0;
	}
	p.n_layers = cv->n_jobs;
	p.layers = cv->snap;
	p.seconds = (now - cv->t0_ms) / 1000.0;
	cv->o->progress(cv->o->progress_ctx, &p);
}

static int run_jobs(struct conv *cv)
{
	pthread_t th[LP_IMAGE_JOBS_MAX];
	unsigned int jobs = cv->o->jobs ? cv->o->jobs : DEFAULT_JOBS;
	unsigned int n = 0, i;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct timespec ts;
	int r = 0;

	if (jobs > LP_IMAGE_JOBS_MAX)
		jobs = LP_IMAGE_JOBS_MAX;
	if (jobs > cv->n_jobs)
		jobs = (unsigned int)cv->n_jobs;
	/*
	 * Every job may use every CPU: layers differ wildly in size, and a
	 * fixed share would leave the big one on one core while the small
	 * ones finish. The kernel balances the oversubscription.
	 */
	cv->threads_per_job = cv->o->convert.threads ?
				      cv->o->convert.threads :
				      (unsigned int)(ncpu > 0 ? ncpu : 1);
	for (i = 0; i < jobs; i++) {
		r = -pthread_create(&th[n], NULL, worker_main, cv);
		if (r < 0) {
			atomic_store(&cv->cancel, true);
			lp_err_set(cv->err, r, "pthread_create: %s",
				   strerror(-r));
			break;
		}
		n++;
	}
	pthread_mutex_lock(&cv->lock);
	while (cv->workers_done < n) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PROGRESS_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cv->cond, &cv->lock, &ts);
		pthread_mutex_unlock(&cv->lock);
		report(cv, LP_IMAGE_PHASE_CONVERT);
		pthread_mutex_lock(&cv->lock);
	}
	pthread_mutex_unlock(&cv->lock);
	for (i = 0; i < n; i++)
		/* th[0..n) were all set by pthread_create() above; cppcheck
		   does not follow n across the loops */
		/* cppcheck-suppress uninitvar */
		pthread_join(th[i], NULL);
	report(cv, LP_IMAGE_PHASE_CONVERT);
	if (r < 0)
		return r;
	/* the first failed layer in order is the one reported */
	for (i = 0; i < cv->n_jobs; i++) {
		struct job *j = &cv->jobs[i];

		if (j->r < 0 && j->r != -ECANCELED)
			return lp_err_set(cv->err, j->r, "%s",
					  lp_err_str(&j->err, j->r));
	}
	for (i = 0; i < cv->n_jobs; i++)
		if (cv->jobs[i].r < 0)
			return lp_err_set(
				cv->err, cv->jobs[i].r, "%s",
				lp_err_str(&cv->jobs[i].err, cv->jobs[i].r));
	return 0;
}

/* ---- resolving the source ---- */

static bool layer_type(const char *mt, enum src_compression *ret)
{
	size_t i;

	for (i = 0; i < LP_ARRAY_SIZE(layer_types); i++)
		if (!strcmp(mt, layer_types[i].media_type)) {
			*ret = layer_types[i].comp;
			return true;
		}
	return false;
}

static char *dup_ann(const struct lp_reg_desc *d, const char *key)
{
	const char *v = lp_reg_desc_annotation(d, key);

	return v ? strdup(v) : NULL;
}

/* whether source layer @j can be copied as it is */
static bool can_reuse(const struct conv *cv, const struct job *j,
		      enum src_compression comp)
{
	struct lp_digest d;
	uint64_t u;

	if (!j->ann_toc || lp_digest_parse(j->ann_toc, &d) < 0 ||
	    parse_u64(j->ann_usize, &u) < 0)
		return false;
	if (want_format(cv) == LP_FMT_ZSTD_CHUNKED)
		return comp == SRC_ZSTD && j->ann_zck && j->ann_zpos &&
		       strlen(j->ann_zpos) < NUM_STR_MAX;
	return comp == SRC_GZIP;
}

static const char *cfg_str(json_object *cfg, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(cfg, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

/* an explicit --platform against a single-manifest image's config */
static int check_platform(struct conv *cv, json_object *cfg)
{
	const char *want = cv->o->platform, *os = cfg_str(cfg, "os"),
		   *arch = cfg_str(cfg, "architecture"),
		   *variant = cfg_str(cfg, "variant");
	char have[256];

	snprintf(have, sizeof(have), "%s/%s%s%s", os, arch, *variant ? "/" : "",
		 variant);
	if (!want || !strcmp(want, have))
		return 0;
	/* "os/arch" matches any variant */
	if (!strncmp(want, have, strlen(want)) && have[strlen(want)] == '/')
		return 0;
	return lp_err_set(cv->err, -ENOENT,
			  "%s: the image is for %s, not %s (it has no index "
			  "of platforms)",
			  lp_img_store_name(cv->src), have, want);
}

/* image manifest @m (owned from here on) joins the conversion */
static int add_image(struct conv *cv, struct lp_reg_manifest *m,
		     size_t index_pos, bool from_index)
{
	struct img *im = &cv->imgs[cv->n_imgs];
	const struct lp_reg_desc *cd = lp_reg_manifest_config(m);
	json_object *rootfs, *ids;
	struct json_tokener *tok = NULL;
	struct job *jobs;
	char ds[LP_DIGEST_STR_LEN + 1];
	size_t i, k, n = lp_reg_manifest_count(m);
	int r;

	memset(im, 0, sizeof(*im));
	im->m = m;
	im->index_pos = index_pos;
	cv->n_imgs++;
	lp_digest_format(&cd->digest, ds);
	r = lp_img_store_get_small(cv->src, cd, LP_IMAGE_CONFIG_MAX,
				   &im->config, &im->config_len, cv->err);
	if (r < 0)
		goto out;
	tok = json_tokener_new();
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	im->config_json =
		json_tokener_parse_ex(tok, im->config, (int)im->config_len);
	if (!im->config_json ||
	    json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(im->config_json, json_type_object) ||
	    !json_object_object_get_ex(im->config_json, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	    !json_object_is_type(ids, json_type_array)) {
		r = lp_err_set(cv->err, -EINVAL,
			       "%s: config %s: not an image config (no "
			       "rootfs.diff_ids)",
			       lp_img_store_name(cv->src), ds);
		goto out;
	}
	if (json_object_array_length(ids) != n) {
		r = lp_err_set(cv->err, -EINVAL,
			       "%s: config %s lists %zu diff_ids for %zu "
			       "layers",
			       lp_img_store_name(cv->src), ds,
			       json_object_array_length(ids), n);
		goto out;
	}
	if (!from_index) {
		r = check_platform(cv, im->config_json);
		if (r < 0)
			goto out;
	}
	im->job_of = calloc(n ? n : 1, sizeof(*im->job_of));
	jobs = realloc(cv->jobs, (cv->n_jobs + n + 1) * sizeof(*jobs));
	if (jobs)
		cv->jobs = jobs;
	if (!im->job_of || !jobs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct lp_reg_desc *d = lp_reg_manifest_layer(m, i);
		enum src_compression comp;
		struct job *j;

		for (k = 0; k < cv->n_jobs; k++)
			if (lp_digest_equal(&cv->jobs[k].src.digest,
					    &d->digest))
				break;
		im->job_of[i] = k;
		if (k < cv->n_jobs)
			continue;
		lp_digest_format(&d->digest, ds);
		if (!layer_type(d->media_type, &comp)) {
			r = lp_err_set(cv->err, -EOPNOTSUPP,
				       "%s: layer %zu (%s) has media type %s, "
				       "not a tar layer this can convert",
				       lp_img_store_name(cv->src), i, ds,
				       d->media_type);
			goto out;
		}
		j = &cv->jobs[cv->n_jobs++];
		memset(j, 0, sizeof(*j));
		j->src = *d;
		j->src.annotations = NULL;
		j->src.n_annotations = 0;
		j->media_type = strdup(d->media_type);
		j->ann_toc = dup_ann(d, LP_IMAGE_ANN_TOC_DIGEST);
		j->ann_usize = dup_ann(d, LP_IMAGE_ANN_UNCOMPRESSED_SIZE);
		j->ann_zck = dup_ann(d, LP_IMAGE_ANN_ZSTD_CHECKSUM);
		j->ann_zpos = dup_ann(d, LP_IMAGE_ANN_ZSTD_POSITION);
		if (!j->media_type) {
			r = -ENOMEM;
			goto out;
		}
		j->src.media_type = j->media_type;
		j->index = i;
		if (lp_digest_parse(json_object_get_string(
					    json_object_array_get_idx(ids, i)),
				    &j->src_diff_id) < 0) {
			r = lp_err_set(cv->err, -EINVAL,
				       "%s: config: diff_ids[%zu] is not a "
				       "sha256 digest",
				       lp_img_store_name(cv->src), i);
			goto out;
		}
		j->reuse = can_reuse(cv, j, comp);
	}
	r = 0;
out:
	if (tok)
		json_tokener_free(tok);
	return r;
}

static bool is_image_entry(const struct lp_reg_desc *d)
{
	return (!strcmp(d->media_type, LP_REG_MT_OCI_MANIFEST) ||
		!strcmp(d->media_type, LP_REG_MT_DOCKER_MANIFEST)) &&
	       strcmp(d->platform.os, "unknown") &&
	       strcmp(d->platform.arch, "unknown");
}

/* "linux/amd64, linux/arm64/v8" for a wrong-platform message */
static void list_platforms(const struct lp_reg_manifest *idx, char *out,
			   size_t size)
{
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < lp_reg_manifest_count(idx) && len < size; i++) {
		const struct lp_reg_desc *d = lp_reg_manifest_layer(idx, i);
		int n;

		if (!is_image_entry(d))
			continue;
		n = snprintf(out + len, size - len, "%s%s/%s%s%s",
			     len ? ", " : "", d->platform.os, d->platform.arch,
			     d->platform.variant[0] ? "/" : "",
			     d->platform.variant);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

static int resolve(struct conv *cv)
{
	struct lp_reg_manifest *m = NULL;
	const struct lp_reg_desc *d;
	size_t i, n;
	char plats[512];
	int r;

	r = lp_img_store_get_top(cv->src, &cv->top, cv->err);
	if (r < 0)
		goto out;
	n = lp_reg_manifest_is_index(cv->top) ? lp_reg_manifest_count(cv->top) :
						1;
	cv->imgs = calloc(n ? n : 1, sizeof(*cv->imgs));
	if (!cv->imgs) {
		r = -ENOMEM;
		goto out;
	}
	if (!lp_reg_manifest_is_index(cv->top)) {
		m = cv->top;
		cv->top = NULL;
		r = add_image(cv, m, 0, false);
		m = NULL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		d = lp_reg_manifest_layer(cv->top, i);
		if (!is_image_entry(d))
			continue;
		if (!cv->o->all_platforms) {
			const struct lp_reg_desc *pick;

			r = lp_reg_index_select(cv->top, cv->o->platform,
						&pick);
			if (r < 0) {
				list_platforms(cv->top, plats, sizeof(plats));
				r = lp_err_set(cv->err,
					       r == -EINVAL ? -EINVAL : -ENOENT,
					       "%s: no image for platform %s "
					       "(the index has: %s)",
					       lp_img_store_name(cv->src),
					       cv->o->platform ?
						       cv->o->platform :
						       "of this host",
					       plats);
				goto out;
			}
			if (pick != d)
				continue;
		}
		r = lp_img_store_get_manifest(cv->src, d, &m, cv->err);
		if (r < 0)
			goto out;
		if (lp_reg_manifest_is_index(m)) {
			r = lp_err_set(cv->err, -EOPNOTSUPP,
				       "%s: nested index in the index",
				       lp_img_store_name(cv->src));
			goto out;
		}
		r = add_image(cv, m, i, true);
		m = NULL;
		if (r < 0)
			goto out;
	}
	if (!cv->n_imgs)
		r = lp_err_set(cv->err, -ENOENT, "%s: the index has no image",
			       lp_img_store_name(cv->src));
out:
	lp_reg_manifest_free(m);
	return r;
}

/* the prioritised paths that apply to job @j */
static int assign_prio(struct conv *cv, struct job *j)
{
	const struct lp_prio_list *l = cv->o->prio;
	size_t i, n = 0;

	if (!l || !l->n)
		return 0;
	j->prio = calloc(l->n, sizeof(*j->prio));
	if (!j->prio)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		const struct lp_prio *p = &l->items[i];
		bool named = p->has_digest || p->layer_index >= 0;

		if (named &&
		    !(p->has_digest &&
		      (lp_digest_equal(&p->layer_digest, &j->src.digest) ||
		       lp_digest_equal(&p->layer_digest, &j->src_diff_id))) &&
		    !(p->layer_index >= 0 &&
		      (size_t)p->layer_index == j->index))
			continue;
		j->prio[n++] = p->path;
	}
	j->nr_prio = n;
	return 0;
}

/* ---- writing ---- */

static json_object *desc_json(const char *mt, const struct lp_digest *d,
			      uint64_t size)
{
	char ds[LP_DIGEST_STR_LEN + 1];
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	lp_digest_format(d, ds);
	json_object_object_add(o, "mediaType", json_object_new_string(mt));
	json_object_object_add(o, "digest", json_object_new_string(ds));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	return o;
}

static bool is_our_annotation(const char *k)
{
	return !strcmp(k, LP_IMAGE_ANN_TOC_DIGEST) ||
	       !strcmp(k, LP_IMAGE_ANN_UNCOMPRESSED_SIZE) ||
	       !strcmp(k, LP_IMAGE_ANN_ZSTD_CHECKSUM) ||
	       !strcmp(k, LP_IMAGE_ANN_ZSTD_POSITION);
}

static char *to_string(json_object *o, size_t *ret_len)
{
	const char *s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *c = s ? strdup(s) : NULL;

	if (c)
		*ret_len = strlen(c);
	return c;
}

static json_object *copy_member(json_object *from, const char *key)
{
	json_object *v;

	if (from && json_object_object_get_ex(from, key, &v))
		return json_object_get(v);
	return NULL;
}

/* new config (diff_ids replaced, the rest as it was) and manifest */
static int build_image(struct conv *cv, struct img *im)
{
	const struct lp_reg_desc *cd = lp_reg_manifest_config(im->m);
	json_object *ids = NULL, *rootfs, *src = NULL, *out = NULL, *layers,
		    *ann, *sl = NULL, *sann, *v;
	enum lp_layer_format f = want_format(cv);
	char ds[LP_DIGEST_STR_LEN + 1], num[NUM_STR_MAX];
	const void *raw;
	size_t i, n = lp_reg_manifest_count(im->m), rlen;
	int r = -ENOMEM;

	ids = json_object_new_array();
	if (!ids)
		goto out;
	for (i = 0; i < n; i++) {
		lp_digest_format(&cv->jobs[im->job_of[i]].res.diff_id, ds);
		json_object_array_add(ids, json_object_new_string(ds));
	}
	json_object_object_get_ex(im->config_json, "rootfs", &rootfs);
	json_object_object_add(rootfs, "diff_ids", ids); /* keeps key order */
	ids = NULL;
	im->out_config = to_string(im->config_json, &im->out_config_len);
	if (!im->out_config)
		goto out;
	lp_sha256(im->out_config, im->out_config_len, &im->out_config_digest);

	raw = lp_reg_manifest_raw(im->m, &rlen);
	src = json_tokener_parse(raw);
	if (!src) {
		r = -EPROTO;
		goto out;
	}
	if (!json_object_object_get_ex(src, "layers", &sl) ||
	    !json_object_is_type(sl, json_type_array) ||
	    json_object_array_length(sl) != n) {
		r = -EPROTO;
		goto out;
	}
	out = json_object_new_object();
	layers = json_object_new_array();
	if (!out || !layers) {
		json_object_put(layers);
		goto out;
	}
	json_object_object_add(out, "schemaVersion", json_object_new_int(2));
	json_object_object_add(out, "mediaType",
			       json_object_new_string(LP_REG_MT_OCI_MANIFEST));
	if ((v = copy_member(src, "artifactType")))
		json_object_object_add(out, "artifactType", v);
	json_object_object_add(
		out, "config",
		desc_json(strcmp(cd->media_type, MT_DOCKER_CONFIG) ?
				  cd->media_type :
				  MT_OCI_CONFIG,
			  &im->out_config_digest, im->out_config_len));
	for (i = 0; i < n; i++) {
		struct job *j = &cv->jobs[im->job_of[i]];
		json_object *d = desc_json(out_media_type(f),
					   &j->res.blob_digest, j->res.size);

		ann = json_object_new_object();
		if (!d || !ann) {
			json_object_put(d);
			json_object_put(ann);
			json_object_put(layers);
			goto out;
		}
		/* the source's other annotations stay */
		sann = NULL;
		if (json_object_object_get_ex(json_object_array_get_idx(sl, i),
					      "annotations", &sann) &&
		    json_object_is_type(sann, json_type_object)) {
			json_object_object_foreach(sann, k, val)
			{
				if (!is_our_annotation(k))
					json_object_object_add(
						ann, k, json_object_get(val));
			}
		}
		lp_digest_format(&j->res.toc_digest, ds);
		json_object_object_add(ann, LP_IMAGE_ANN_TOC_DIGEST,
				       json_object_new_string(ds));
		snprintf(num, sizeof(num), "%llu",
			 (unsigned long long)j->res.uncompressed_size);
		json_object_object_add(ann, LP_IMAGE_ANN_UNCOMPRESSED_SIZE,
				       json_object_new_string(num));
		if (f == LP_FMT_ZSTD_CHUNKED) {
			json_object_object_add(ann, LP_IMAGE_ANN_ZSTD_CHECKSUM,
					       json_object_new_string(j->zck));
			json_object_object_add(ann, LP_IMAGE_ANN_ZSTD_POSITION,
					       json_object_new_string(j->zpos));
		}
		json_object_object_add(d, "annotations", ann);
		json_object_array_add(layers, d);
	}
	json_object_object_add(out, "layers", layers);
	if ((v = copy_member(src, "subject")))
		json_object_object_add(out, "subject", v);
	if ((v = copy_member(src, "annotations")))
		json_object_object_add(out, "annotations", v);
	im->out_manifest = to_string(out, &im->out_manifest_len);
	if (!im->out_manifest)
		goto out;
	if (im->out_manifest_len > LP_REG_MANIFEST_MAX) {
		r = lp_err_set(cv->err, -EFBIG, "the new manifest is too big");
		goto out;
	}
	lp_sha256(im->out_manifest, im->out_manifest_len,
		  &im->out_manifest_digest);
	r = 0;
out:
	json_object_put(ids);
	json_object_put(src);
	json_object_put(out);
	return r;
}

static int build_index(struct conv *cv, char **ret_data, size_t *ret_len)
{
	json_object *src = NULL, *out = NULL, *arr, *sm = NULL, *e, *v;
	const void *raw;
	size_t i, rlen;
	int r = -ENOMEM;

	raw = lp_reg_manifest_raw(cv->top, &rlen);
	src = json_tokener_parse(raw);
	if (!src || !json_object_object_get_ex(src, "manifests", &sm) ||
	    !json_object_is_type(sm, json_type_array)) {
		r = -EPROTO;
		goto out;
	}
	out = json_object_new_object();
	arr = json_object_new_array();
	if (!out || !arr) {
		json_object_put(arr);
		goto out;
	}
	json_object_object_add(out, "schemaVersion", json_object_new_int(2));
	json_object_object_add(out, "mediaType",
			       json_object_new_string(LP_REG_MT_OCI_INDEX));
	for (i = 0; i < cv->n_imgs; i++) {
		struct img *im = &cv->imgs[i];

		e = desc_json(LP_REG_MT_OCI_MANIFEST, &im->out_manifest_digest,
			      im->out_manifest_len);
		if (!e) {
			json_object_put(arr);
			goto out;
		}
		if (im->index_pos < json_object_array_length(sm) &&
		    (v = copy_member(
			     json_object_array_get_idx(sm, im->index_pos),
			     "platform")))
			json_object_object_add(e, "platform", v);
		json_object_array_add(arr, e);
	}
	json_object_object_add(out, "manifests", arr);
	if ((v = copy_member(src, "annotations")))
		json_object_object_add(out, "annotations", v);
	*ret_data = to_string(out, ret_len);
	r = *ret_data ? 0 : -ENOMEM;
out:
	json_object_put(src);
	json_object_put(out);
	return r;
}

/* blobs, configs, manifests; the tag last */
static int publish(struct conv *cv, struct lp_image_result *res)
{
	char *index = NULL;
	size_t i, len = 0;
	int r = 0;

	for (i = 0; i < cv->n_jobs && r == 0; i++) {
		struct job *j = &cv->jobs[i];

		r = lp_img_store_put_file(cv->dst, &j->res.blob_digest,
					  j->res.size, j->out_path,
					  j->reuse ? cv->src : NULL, cv->err);
	}
	for (i = 0; i < cv->n_imgs && r == 0; i++)
		r = lp_img_store_put_mem(cv->dst, cv->imgs[i].out_config,
					 cv->imgs[i].out_config_len, NULL,
					 cv->err);
	if (r < 0)
		goto out;
	if (cv->n_imgs == 1) {
		res->media_type = LP_REG_MT_OCI_MANIFEST;
		r = lp_img_store_put_tag(cv->dst, LP_REG_MT_OCI_MANIFEST,
					 cv->imgs[0].out_manifest,
					 cv->imgs[0].out_manifest_len,
					 &res->digest, cv->err);
		goto out;
	}
	for (i = 0; i < cv->n_imgs && r == 0; i++)
		r = lp_img_store_put_manifest(cv->dst, LP_REG_MT_OCI_MANIFEST,
					      cv->imgs[i].out_manifest,
					      cv->imgs[i].out_manifest_len,
					      NULL, cv->err);
	if (r == 0)
		r = build_index(cv, &index, &len);
	if (r < 0)
		goto out;
	res->media_type = LP_REG_MT_OCI_INDEX;
	r = lp_img_store_put_tag(cv->dst, LP_REG_MT_OCI_INDEX, index, len,
				 &res->digest, cv->err);
out:
	if (r < 0)
		lp_err_set(cv->err, r, "writing to %s: %s",
			   lp_img_store_name(cv->dst), strerror(-r));
	free(index);
	return r;
}

/* ---- the whole ---- */

static int make_tmpdir(struct conv *cv)
{
	const char *base = cv->o->tmpdir;
	size_t i;
	int n;

	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/var/tmp";
	n = snprintf(cv->tmpdir, sizeof(cv->tmpdir),
		     "%s/lazypull-convert.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(cv->tmpdir) - 64 ||
	    !mkdtemp(cv->tmpdir)) {
		n = n < 0 || (size_t)n >= sizeof(cv->tmpdir) - 64 ?
			    ENAMETOOLONG :
			    errno;
		cv->tmpdir[0] = '\0';
		return lp_err_set(cv->err, -n,
				  "%s: cannot make a temporary "
				  "directory: %s",
				  base, strerror(n));
	}
	for (i = 0; i < cv->n_jobs; i++) {
		struct job *j = &cv->jobs[i];

		/* cannot be cut short: tmpdir is 64 bytes below PATH_MAX */
		if (snprintf(j->dir, sizeof(j->dir), "%s/%zu", cv->tmpdir, i) >=
			    (int)sizeof(j->dir) ||
		    snprintf(j->out_path, sizeof(j->out_path), "%s/%zu/blob",
			     cv->tmpdir, i) >= (int)sizeof(j->out_path))
			return lp_err_set(cv->err, -ENAMETOOLONG,
					  "%s: too long", cv->tmpdir);
	}
	return 0;
}

static void conv_release(struct conv *cv)
{
	size_t i;

	for (i = 0; i < cv->n_jobs; i++) {
		struct job *j = &cv->jobs[i];

		if (cv->tmpdir[0]) {
			unlink(j->out_path);
			rmdir(j->dir);
		}
		free(j->media_type);
		free(j->ann_toc);
		free(j->ann_usize);
		free(j->ann_zck);
		free(j->ann_zpos);
		free(j->prio);
	}
	if (cv->tmpdir[0])
		rmdir(cv->tmpdir);
	for (i = 0; i < cv->n_imgs; i++) {
		struct img *im = &cv->imgs[i];

		lp_reg_manifest_free(im->m);
		free(im->config);
		json_object_put(im->config_json);
		free(im->job_of);
		free(im->out_config);
		free(im->out_manifest);
	}
	free(cv->imgs);
	free(cv->jobs);
	free(cv->snap);
	lp_reg_manifest_free(cv->top);
	lp_img_store_free(cv->src);
	lp_img_store_free(cv->dst);
	lp_reg_free(cv->reg);
	pthread_mutex_destroy(&cv->lock);
	pthread_cond_destroy(&cv->cond);
}

int lp_image_convert(const struct lp_image_opts *o,
		     struct lp_image_result *ret_res, struct lp_err *err)
{
	struct lp_image_result res = { 0 };
	struct conv cv = { .o = o, .err = err };
	size_t i;
	int r;

	pthread_mutex_init(&cv.lock, NULL);
	pthread_cond_init(&cv.cond, NULL);
	cv.t0_ms = (int64_t)lp_mono_ms();
	if (o->jobs > LP_IMAGE_JOBS_MAX) {
		r = lp_err_set(err, -EINVAL, "at most %d jobs",
			       LP_IMAGE_JOBS_MAX);
		goto out;
	}
	r = lp_reg_new(&o->reg, &cv.reg);
	if (r < 0) {
		lp_err_set(err, r, "registry client: %s", strerror(-r));
		goto out;
	}
	r = lp_img_store_open(o->src, cv.reg, false, &cv.src, err);
	if (r == 0)
		r = lp_img_store_open(o->dst, cv.reg, true, &cv.dst, err);
	if (r < 0)
		goto out;
	if (o->progress)
		o->progress(o->progress_ctx,
			    &(struct lp_image_progress){
				    .phase = LP_IMAGE_PHASE_RESOLVE });
	r = resolve(&cv);
	if (r < 0)
		goto out;
	for (i = 0; i < cv.n_jobs && r == 0; i++) {
		r = assign_prio(&cv, &cv.jobs[i]);
		/* a copy would keep the old order and landmark */
		if (o->reconvert || cv.jobs[i].nr_prio)
			cv.jobs[i].reuse = false;
	}
	cv.snap = calloc(cv.n_jobs ? cv.n_jobs : 1, sizeof(*cv.snap));
	if (r < 0 || !cv.snap) {
		r = -ENOMEM;
		goto out;
	}
	r = make_tmpdir(&cv);
	if (r < 0)
		goto out;
	report(&cv, LP_IMAGE_PHASE_CONVERT);
	r = run_jobs(&cv);
	if (r < 0)
		goto out;
	for (i = 0; i < cv.n_imgs && r == 0; i++)
		r = build_image(&cv, &cv.imgs[i]);
	if (r < 0) {
		lp_err_set(err, r, "building the new manifests: %s",
			   strerror(-r));
		goto out;
	}
	report(&cv, LP_IMAGE_PHASE_PUSH);
	r = publish(&cv, &res);
	if (r < 0)
		goto out;
	res.n_platforms = cv.n_imgs;
	res.n_layers = cv.n_jobs;
	for (i = 0; i < cv.n_jobs; i++) {
		struct job *j = &cv.jobs[i];

		if (j->reuse)
			res.n_reused++;
		else
			res.n_converted++;
		res.bytes_before += j->src.size;
		res.bytes_after += j->res.size;
		res.bytes_uncompressed += j->res.uncompressed_size;
	}
	res.seconds = ((int64_t)lp_mono_ms() - cv.t0_ms) / 1000.0;
	report(&cv, LP_IMAGE_PHASE_DONE);
	*ret_res = res;
out:
	conv_release(&cv);
	return r;
}
