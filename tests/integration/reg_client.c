// SPDX-License-Identifier: Apache-2.0
/*
 * A small driver of the registry client for tests/integration/
 * test_registry.sh and test_reg_trickle.sh: fetch manifests and blobs (to
 * a file; into memory: fetch-mem), read ranges (single, multi, and many
 * random ones from several threads compared with a local copy),
 * push blobs and manifests, read a range and reject some of its bytes (as
 * the chunk verifier does: the warning names the host blamed), list the
 * referrers of a manifest (referrers: via the API or the tag). Options
 * come from the environment: LP_REG_HTTPS=1 (TLS even on loopback),
 * LP_REG_CA, LP_REG_USER/LP_REG_PASS, LP_REG_LOW_SPEED_S, LP_REG_ATTEMPTS,
 * LP_REG_BUDGET_MS, LP_REG_TIMEOUT_MS, LP_REG_CONFIG_DIR (hosts.toml
 * directory), DOCKER_CONFIG.
 * Exit status: 0 ok, 1 error (message on stderr), 2 wrong bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lp_log.h"
#include "lp_registry.h"

static struct lp_reg *reg;
static struct lp_reg_ref ref;

static int die(int r, struct lp_err *err, const char *what)
{
	fprintf(stderr, "reg_client: %s: %s (%d)\n", what, lp_err_str(err, r),
		r);
	return 1;
}

static int setup(const char *refstr)
{
	struct lp_reg_opts o;
	const char *e;
	int r;

	lp_reg_opts_init(&o);
	if (getenv("LP_REG_HTTPS"))
		o.loopback_plain_http = false;
	o.ca_file = getenv("LP_REG_CA");
	if ((e = getenv("LP_REG_LOW_SPEED_S")))
		o.low_speed_time_s = strtol(e, NULL, 10);
	if ((e = getenv("LP_REG_ATTEMPTS")))
		o.max_attempts = (unsigned)strtoul(e, NULL, 10);
	if ((e = getenv("LP_REG_BUDGET_MS")))
		o.retry_budget_ms = strtol(e, NULL, 10);
	if ((e = getenv("LP_REG_TIMEOUT_MS")))
		o.request_timeout_ms = strtol(e, NULL, 10);
	o.connect_timeout_ms = 3000;
	o.registry_config_dir = getenv("LP_REG_CONFIG_DIR");
	r = lp_reg_ref_parse(refstr, &ref);
	if (r < 0)
		return die(r, NULL, "bad reference");
	r = lp_reg_new(&o, &reg);
	if (r < 0)
		return die(r, NULL, "lp_reg_new");
	if (getenv("LP_REG_USER"))
		lp_reg_set_credentials(
			reg, ref.host, getenv("LP_REG_USER"),
			getenv("LP_REG_PASS") ? getenv("LP_REG_PASS") : "");
	return 0;
}

static int parse_digest(const char *s, struct lp_digest *d)
{
	return lp_digest_parse(s, d);
}

struct check_ctx {
	struct lp_blob *blob;
	const uint8_t *want;
	uint64_t size;
	unsigned int reads, seed;
	unsigned int errors, wrong;
};

static void *check_thread(void *arg)
{
	struct check_ctx *c = arg;
	uint8_t *buf = malloc(1 << 20);
	unsigned int i, seed = c->seed;

	for (i = 0; buf && i < c->reads; i++) {
		uint64_t off = (uint64_t)rand_r(&seed) % c->size;
		size_t len = (size_t)(rand_r(&seed) % (1 << 16)) + 1;

		if (len > c->size - off)
			len = (size_t)(c->size - off);
		memset(buf, 0xa5, len);
		if (lp_blob_pread(c->blob, buf, len, off, NULL) < 0)
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		else if (memcmp(buf, c->want + off, len))
			__atomic_add_fetch(&c->wrong, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

/* a streamed read's reports: the filled prefix only grows */
struct stream_ctx {
	size_t last, len;
	unsigned int calls, bad;
};

static int stream_progress(void *arg, size_t done)
{
	struct stream_ctx *sc = arg;

	if (done <= sc->last || done > sc->len)
		sc->bad++;
	sc->last = done;
	sc->calls++;
	return 0;
}

static int read_file(const char *path, uint8_t **data, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	*data = malloc(*size + 1);
	if (!*data || pread(fd, *data, *size, 0) != (ssize_t)*size) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct lp_err err;
	struct lp_digest d;
	int r = 1;

	lp_err_clear(&err);
	lp_log_init(getenv("LP_REG_DEBUG") ? LP_LOG_DEBUG : LP_LOG_WARN);
	if (argc < 3) {
		fprintf(stderr, "usage: reg_client CMD REF ...\n");
		return 1;
	}
	if (setup(argv[2]))
		return 1;
	if (!strcmp(argv[1], "manifest")) {
		struct lp_reg_manifest *m = NULL;
		char ds[LP_DIGEST_STR_LEN + 1];
		size_t i;

		r = lp_reg_manifest_fetch(reg, &ref, argc > 3 ? argv[3] : NULL,
					  &m, &err);
		if (r < 0)
			return die(r, &err, "manifest");
		lp_digest_format(lp_reg_manifest_digest(m), ds);
		printf("manifest %s %s\n", ds, lp_reg_manifest_media_type(m));
		lp_digest_format(&lp_reg_manifest_config(m)->digest, ds);
		printf("config %s %" PRIu64 "\n", ds,
		       lp_reg_manifest_config(m)->size);
		for (i = 0; i < lp_reg_manifest_count(m); i++) {
			const struct lp_reg_desc *l =
				lp_reg_manifest_layer(m, i);
			const char *toc = lp_reg_desc_annotation(
				l, "containerd.io/snapshot/stargz/toc.digest");

			lp_digest_format(&l->digest, ds);
			printf("layer %s %" PRIu64 " %s %s\n", ds, l->size,
			       l->media_type, toc ? toc : "-");
		}
		lp_reg_manifest_free(m);
		r = 0;
	} else if (!strcmp(argv[1], "warm") && argc == 4) {
		/* warm REF N: lp_reg_warm() of N connections, asked twice
		 * (the second within LP_REG_WARM_EVERY_MS starts nothing);
		 * waits 3 s for the pings before it exits */
		long n = strtol(argv[3], NULL, 10);

		r = lp_reg_warm(reg, &ref, (unsigned int)n);
		if (r == 0)
			r = lp_reg_warm(reg, &ref, (unsigned int)n);
		if (r < 0)
			return die(r, NULL, "warm");
		sleep(3);
		printf("warm %ld\n", n);
	} else if (!strcmp(argv[1], "referrers") && argc >= 4) {
		/* referrers REF SUBJECT [ARTIFACT_TYPE [TIMES]]: the referrers
		 * of SUBJECT, TIMES (default 1) times with one client */
		struct lp_reg_manifest *ix = NULL;
		char ds[LP_DIGEST_STR_LEN + 1];
		const struct lp_reg_desc *e;
		const char *at = argc > 4 && argv[4][0] ? argv[4] : NULL;
		long times = argc > 5 ? strtol(argv[5], NULL, 10) : 1;
		bool api = false;
		size_t i;

		if (parse_digest(argv[3], &d) < 0)
			return die(-EINVAL, NULL, "digest");
		for (; times > 0; times--) {
			r = lp_reg_referrers_from(reg, &ref, &d, at, &ix, &api,
						  &err);
			if (r == -ENOENT) {
				printf("none\n");
				continue;
			}
			if (r < 0)
				return die(r, &err, "referrers");
			printf("via=%s n=%zu\n", api ? "api" : "tag",
			       lp_reg_manifest_count(ix));
			for (i = 0; i < lp_reg_manifest_count(ix); i++) {
				e = lp_reg_manifest_layer(ix, i);
				lp_digest_format(&e->digest, ds);
				printf("referrer %s %s\n", ds,
				       e->artifact_type ? e->artifact_type :
							  "-");
			}
			lp_reg_manifest_free(ix);
			ix = NULL;
		}
		r = 0;
	} else if (!strcmp(argv[1], "fetch") && argc == 6) {
		int fd;

		if (parse_digest(argv[3], &d) < 0)
			return die(-EINVAL, NULL, "digest");
		fd = open(argv[5], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return die(-errno, NULL, argv[5]);
		r = lp_reg_fetch_blob(reg, &ref, &d,
				      strtoull(argv[4], NULL, 10), fd, &err);
		close(fd);
		if (r < 0)
			return die(r, &err, "fetch");
	} else if (!strcmp(argv[1], "fetch-mem") && argc == 6) {
		void *data = NULL;
		size_t len = 0;
		FILE *f;

		if (parse_digest(argv[3], &d) < 0)
			return die(-EINVAL, NULL, "digest");
		r = lp_reg_fetch_blob_mem(reg, &ref, &d,
					  strtoull(argv[4], NULL, 10), &data,
					  &len, &err);
		if (r < 0)
			return die(r, &err, "fetch-mem");
		f = fopen(argv[5], "w");
		if (f && fwrite(data, 1, len, f) != len)
			r = -EIO;
		if (!f || fclose(f))
			r = -EIO;
		free(data);
		if (r < 0)
			return die(r, NULL, argv[5]);
	} else if (!strcmp(argv[1], "pread") && argc == 7) {
		struct lp_reg_blob *rb = NULL;
		size_t len = strtoull(argv[6], NULL, 10);
		uint8_t *buf = malloc(len + 1);

		if (parse_digest(argv[3], &d) < 0 || !buf)
			return die(-EINVAL, NULL, "digest");
		r = lp_reg_blob_open(reg, &ref, &d, strtoull(argv[4], NULL, 10),
				     &rb);
		if (r == 0)
			r = lp_reg_blob_pread(rb, buf, len,
					      strtoull(argv[5], NULL, 10),
					      &err);
		if (r < 0)
			r = die(r, &err, "pread");
		else
			fwrite(buf, 1, len, stdout);
		lp_reg_blob_unref(rb);
		free(buf);
	} else if (!strcmp(argv[1], "reject") && argc == 9) {
		/* reject REF DIGEST SIZE OFF LEN ROFF RLEN: read [OFF, +LEN),
		 * then say [ROFF, +RLEN) of it did not verify */
		struct lp_reg_blob *rb = NULL;
		size_t len = strtoull(argv[6], NULL, 10);
		uint8_t *buf = malloc(len + 1);

		if (parse_digest(argv[3], &d) < 0 || !buf)
			return die(-EINVAL, NULL, "digest");
		r = lp_reg_blob_open(reg, &ref, &d, strtoull(argv[4], NULL, 10),
				     &rb);
		if (r == 0)
			r = lp_reg_blob_pread(rb, buf, len,
					      strtoull(argv[5], NULL, 10),
					      &err);
		if (r < 0) {
			r = die(r, &err, "pread");
		} else {
			lp_reg_blob_reject(rb, strtoull(argv[7], NULL, 10),
					   strtoull(argv[8], NULL, 10));
			fwrite(buf, 1, len, stdout);
		}
		lp_reg_blob_unref(rb);
		free(buf);
	} else if (!strcmp(argv[1], "stream") && argc == 7) {
		/* stream REF DIGEST SIZE OFF LEN: bytes out, reports checked */
		struct lp_blob *blob = NULL;
		struct stream_ctx sc = { 0 };
		uint8_t *buf;

		sc.len = strtoull(argv[6], NULL, 10);
		buf = malloc(sc.len + 1);
		if (parse_digest(argv[3], &d) < 0 || !buf)
			return die(-EINVAL, NULL, "digest");
		r = lp_reg_open_blob(reg, &ref, &d, strtoull(argv[4], NULL, 10),
				     &blob);
		if (r == 0)
			r = lp_blob_pread_stream(blob, buf, sc.len,
						 strtoull(argv[5], NULL, 10),
						 stream_progress, &sc, &err);
		if (r == 0 && (sc.bad || sc.last != sc.len))
			r = -EPROTO;
		fprintf(stderr,
			"stream: %u reports, %u out of order, last %zu\n",
			sc.calls, sc.bad, sc.last);
		if (r < 0)
			r = die(r, &err, "stream");
		else
			fwrite(buf, 1, sc.len, stdout);
		lp_blob_unref(blob);
		free(buf);
	} else if (!strcmp(argv[1], "tail") && argc == 6) {
		/* tail REF DIGEST SIZE|0 WANT: bytes out, "size S" on stderr */
		struct lp_reg_blob *rb = NULL;
		size_t want = strtoull(argv[5], NULL, 10), len = 0;
		uint8_t *buf = malloc(want + 1);

		if (parse_digest(argv[3], &d) < 0 || !buf)
			return die(-EINVAL, NULL, "digest");
		r = lp_reg_blob_open_tail(reg, &ref, &d,
					  strtoull(argv[4], NULL, 10), buf,
					  want, &len, &rb, &err);
		if (r < 0) {
			r = die(r, &err, "tail");
		} else {
			fwrite(buf, 1, len, stdout);
			fprintf(stderr, "size %" PRIu64 "\n",
				lp_reg_blob_size(rb));
		}
		lp_reg_blob_unref(rb);
		free(buf);
	} else if (!strcmp(argv[1], "multi") && argc == 6) {
		struct lp_reg_range g[LP_REG_MULTI_MAX];
		struct lp_reg_blob *rb = NULL;
		char *s = argv[5], *tok, *save = NULL;
		size_t n = 0, i;

		if (parse_digest(argv[3], &d) < 0)
			return die(-EINVAL, NULL, "digest");
		for (tok = strtok_r(s, ",", &save); tok && n < LP_REG_MULTI_MAX;
		     tok = strtok_r(NULL, ",", &save)) {
			g[n].off = strtoull(tok, &tok, 10);
			g[n].len = strtoull(tok + 1, NULL, 10);
			g[n].buf = malloc(g[n].len);
			n++;
		}
		r = lp_reg_blob_open(reg, &ref, &d, strtoull(argv[4], NULL, 10),
				     &rb);
		if (r == 0)
			r = lp_reg_blob_pread_multi(rb, g, n, &err);
		if (r < 0)
			r = die(r, &err, "multi");
		for (i = 0; i < n; i++) {
			if (!r)
				fwrite(g[i].buf, 1, g[i].len, stdout);
			free(g[i].buf);
		}
		lp_reg_blob_unref(rb);
	} else if (!strcmp(argv[1], "check") && argc == 7) {
		/* check REF DIGEST LOCALFILE THREADS READS */
		struct check_ctx c[16];
		pthread_t t[16];
		struct lp_blob *blob;
		uint8_t *want;
		uint64_t size;
		unsigned int i, nt = (unsigned)atoi(argv[5]), errors = 0,
				wrong = 0;

		if (parse_digest(argv[3], &d) < 0 ||
		    read_file(argv[4], &want, &size) < 0 || nt > 16 || !nt)
			return die(-EINVAL, NULL, "args");
		r = lp_reg_open_blob(reg, &ref, &d, size, &blob);
		if (r < 0)
			return die(r, NULL, "open");
		for (i = 0; i < nt; i++) {
			c[i] = (struct check_ctx){ blob,
						   want,
						   size,
						   (unsigned)atoi(argv[6]),
						   i * 7919 + 1,
						   0,
						   0 };
			pthread_create(&t[i], NULL, check_thread, &c[i]);
		}
		for (i = 0; i < nt; i++) {
			pthread_join(t[i], NULL);
			errors += c[i].errors;
			wrong += c[i].wrong;
		}
		printf("check: %u threads, %u errors, %u wrong\n", nt, errors,
		       wrong);
		lp_blob_unref(blob);
		free(want);
		r = wrong ? 2 : errors ? 1 : 0;
	} else if (!strcmp(argv[1], "push-blob") && argc == 4) {
		/* push-blob REF FILE: digest computed here */
		uint8_t *data;
		uint64_t size;
		char ds[LP_DIGEST_STR_LEN + 1];
		int fd;

		if (read_file(argv[3], &data, &size) < 0)
			return die(-EIO, NULL, argv[3]);
		lp_sha256(data, size, &d);
		fd = open(argv[3], O_RDONLY);
		r = lp_reg_push_blob(reg, &ref, &d, size, fd, NULL, &err);
		close(fd);
		free(data);
		if (r < 0)
			return die(r, &err, "push-blob");
		lp_digest_format(&d, ds);
		printf("%s %" PRIu64 "\n", ds, size);
	} else if (!strcmp(argv[1], "push-manifest") && argc == 5) {
		/* push-manifest REF MEDIATYPE FILE */
		uint8_t *data;
		uint64_t size;
		char ds[LP_DIGEST_STR_LEN + 1];

		if (read_file(argv[4], &data, &size) < 0)
			return die(-EIO, NULL, argv[4]);
		r = lp_reg_push_manifest(reg, &ref, argv[3], data, size, &d,
					 &err);
		free(data);
		if (r < 0)
			return die(r, &err, "push-manifest");
		lp_digest_format(&d, ds);
		printf("%s\n", ds);
	} else {
		fprintf(stderr, "reg_client: bad command\n");
		r = 1;
	}
	lp_reg_free(reg);
	return r;
}
