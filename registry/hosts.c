// SPDX-License-Identifier: Apache-2.0
/*
 * Which hosts to fetch a registry's content from, found the way
 * containerd's remotes/docker/config finds them in a certs.d-style
 * directory: the first of DIR/HOST_PORT_, DIR/HOST:PORT and DIR/_default
 * that exists, its hosts.toml (hosts_toml.c) or else its Docker-style
 * *.crt / *.cert / *.key files, and the registry itself (Docker Hub:
 * registry-1.docker.io) as the last host when the file names no server.
 * Also the list's accessors and the path helpers hosts_toml.c shares.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hosts_int.h"
#include "reg_int.h"

/* ---- the list ------------------------------------------------------- */

void reg_hosts_release(struct lp_host *h)
{
	size_t i, j;

	if (!h)
		return;
	free(h->scheme);
	free(h->host);
	free(h->path);
	for (i = 0; i < h->n_ca; i++)
		free(h->ca[i]);
	free(h->ca);
	for (i = 0; i < h->n_clients; i++) {
		free(h->clients[i].cert);
		free(h->clients[i].key);
	}
	free(h->clients);
	for (i = 0; i < h->n_headers; i++) {
		free(h->headers[i].name);
		for (j = 0; j < h->headers[i].n_values; j++)
			free(h->headers[i].values[j]);
		free(h->headers[i].values);
	}
	free(h->headers);
	memset(h, 0, sizeof(*h));
}

size_t lp_hosts_count(const struct lp_hosts *hosts)
{
	return hosts->n;
}

const struct lp_host *lp_hosts_get(const struct lp_hosts *hosts, size_t i)
{
	return i < hosts->n ? &hosts->v[i] : NULL;
}

void lp_hosts_free(struct lp_hosts *hosts)
{
	size_t i;

	if (!hosts)
		return;
	for (i = 0; i < hosts->n; i++)
		reg_hosts_release(&hosts->v[i]);
	free(hosts->v);
	free(hosts);
}

/* ---- paths ---------------------------------------------------------- */

void reg_hosts_path_clean(char *path)
{
	bool rooted = path[0] == '/';
	size_t r = 0, w = 0, dotdot = 0, n = strlen(path);

	/* w: end of the output; dotdot: where ".." can no longer back up */
	if (rooted)
		r = w = dotdot = 1;
	while (r < n) {
		if (path[r] == '/') {
			r++;
		} else if (path[r] == '.' &&
			   (r + 1 == n || path[r + 1] == '/')) {
			r++;
		} else if (path[r] == '.' && path[r + 1] == '.' &&
			   (r + 2 == n || path[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && path[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					path[w++] = '/';
				path[w++] = '.';
				path[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				path[w++] = '/';
			while (r < n && path[r] != '/')
				path[w++] = path[r++];
		}
	}
	if (w == 0)
		path[w++] = '.';
	path[w] = '\0';
}

int reg_hosts_path(const char *dir, const char *p, char **ret_path)
{
	size_t n, dlen;
	char *s;

	if (!p[0])
		return -EINVAL;
	if (p[0] == '/' || !dir || !dir[0]) {
		n = strlen(p);
		if (n >= LP_HOSTS_PATH_MAX)
			return -ENAMETOOLONG;
		s = strdup(p);
		if (!s)
			return -ENOMEM;
		if (p[0] != '/')
			reg_hosts_path_clean(s);
		*ret_path = s;
		return 0;
	}
	dlen = strlen(dir);
	n = dlen + 1 + strlen(p);
	if (n >= LP_HOSTS_PATH_MAX)
		return -ENAMETOOLONG;
	s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, dir, dlen);
	s[dlen] = '/';
	memcpy(s + dlen + 1, p, n - dlen); /* with its NUL */
	reg_hosts_path_clean(s);
	*ret_path = s;
	return 0;
}

/* ---- one directory -------------------------------------------------- */

static int new_list(size_t n, struct lp_hosts **ret_hosts)
{
	struct lp_hosts *hosts = calloc(1, sizeof(*hosts));

	if (hosts)
		hosts->v = calloc(n, sizeof(*hosts->v));
	if (!hosts || !hosts->v) {
		lp_hosts_free(hosts);
		return -ENOMEM;
	}
	hosts->n = n;
	*ret_hosts = hosts;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

static int join(const char *dir, const char *name, struct lp_err *err,
		char **ret_path)
{
	int r = reg_hosts_path(dir, name, ret_path);

	if (r == -ENAMETOOLONG)
		return lp_err_set(err, r, "%s/%s: over LP_HOSTS_PATH_MAX (%d)",
				  dir, name, LP_HOSTS_PATH_MAX);
	return r;
}

/*
 * Docker's layout, containerd's fallback when there is no hosts.toml: in
 * name order, each *.crt a CA, each *.cert a client certificate whose key
 * is the *.key of the same name if there is one (else in the *.cert).
 * One host, the registry itself, carries them.
 */
static int load_cert_files(const char *dir, struct lp_hosts **ret_hosts,
			   struct lp_err *err)
{
	char *names[LP_HOSTS_CERT_FILES_MAX];
	struct lp_hosts *hosts = NULL;
	struct lp_host *h;
	size_t n = 0, i;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return lp_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		struct stat st;

		if (!has_suffix(de->d_name, ".crt") &&
		    !has_suffix(de->d_name, ".cert"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISDIR(st.st_mode))
			continue;
		if (n == LP_HOSTS_CERT_FILES_MAX) {
			r = lp_err_set(err, -EFBIG,
				       "%s: over LP_HOSTS_CERT_FILES_MAX (%d) "
				       "*.crt and *.cert files",
				       dir, LP_HOSTS_CERT_FILES_MAX);
			goto out;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(names[0]), cmp_names);
	r = new_list(1, &hosts);
	if (r < 0)
		goto out;
	h = &hosts->v[0];
	h->ca = calloc(n ? n : 1, sizeof(*h->ca));
	h->clients = calloc(n ? n : 1, sizeof(*h->clients));
	if (!h->ca || !h->clients) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct lp_host_client *cl;
		struct stat st;
		size_t len;

		if (has_suffix(names[i], ".crt")) {
			r = join(dir, names[i], err, &h->ca[h->n_ca]);
			if (r < 0)
				goto out;
			h->n_ca++;
			continue;
		}
		cl = &h->clients[h->n_clients++];
		r = join(dir, names[i], err, &cl->cert);
		if (r < 0)
			goto out;
		len = strlen(cl->cert);
		cl->key = strdup(cl->cert);
		if (!cl->key) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(cl->key + len - 5, ".key", 5); /* over ".cert" */
		if (stat(cl->key, &st) < 0) {
			if (errno != ENOENT) {
				r = lp_err_set(err, -errno, "%s: %s", cl->key,
					       strerror(errno));
				goto out;
			}
			free(cl->key);
			cl->key = NULL;
		}
	}
	*ret_hosts = hosts;
	hosts = NULL;
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	closedir(d);
	lp_hosts_free(hosts);
	return r;
}

/* @dir/hosts.toml, or the certificate files when it is missing or empty */
static int load_dir(const char *dir, struct lp_hosts **ret_hosts,
		    struct lp_err *err)
{
	char *file = NULL, *text = NULL;
	struct stat st;
	size_t len = 0;
	int fd = -1, r;

	r = join(dir, "hosts.toml", err, &file);
	if (r < 0)
		return r;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		r = load_cert_files(dir, ret_hosts, err);
		goto out;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = lp_err_set(err, -errno, "%s: %s", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = lp_err_set(err, -EINVAL, "%s: not a regular file", file);
		goto out;
	}
	if (st.st_size > LP_HOSTS_FILE_MAX) {
		r = lp_err_set(err, -EFBIG,
			       "%s: %lld bytes, over LP_HOSTS_FILE_MAX (%d)",
			       file, (long long)st.st_size, LP_HOSTS_FILE_MAX);
		goto out;
	}
	/* one byte more than allowed: a file that grew is caught too */
	text = malloc(LP_HOSTS_FILE_MAX + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, LP_HOSTS_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = lp_err_set(err, -errno, "%s: %s", file,
				       strerror(errno));
			goto out;
		}
		if (!n || (len += (size_t)n) == LP_HOSTS_FILE_MAX + 1)
			break;
	}
	if (!len)
		r = load_cert_files(dir, ret_hosts, err);
	else
		r = lp_hosts_parse(text, len, dir, file, ret_hosts, err);
out:
	if (fd >= 0)
		close(fd);
	free(text);
	free(file);
	return r;
}

/* ---- resolving ------------------------------------------------------ */

static bool is_hub(const char *h)
{
	return !strcmp(h, LP_REG_DOCKER_HUB) || !strcmp(h, "docker.io") ||
	       !strcmp(h, "index.docker.io");
}

static bool valid_registry(const char *s)
{
	size_t n = strnlen(s, LP_REG_HOST_MAX);

	if (!n || n == LP_REG_HOST_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

/*
 * The directory names looked for, in order, for registry directory @name,
 * as containerd's hostPaths(): "host:port" as "host_port_" first, then as
 * it is; then _default. @alt holds the "host_port_" one. Returns how many.
 */
static size_t candidates(const char *name, char alt[LP_REG_HOST_MAX + 2],
			 const char *cand[3])
{
	const char *colon = strrchr(name, ':');
	size_t n = 0;

	if (colon && colon != name) {
		snprintf(alt, LP_REG_HOST_MAX + 2, "%.*s_%s_",
			 (int)(colon - name), name, colon + 1);
		cand[n++] = alt;
	}
	cand[n++] = name;
	cand[n++] = "_default";
	return n;
}

static int find_dir(const char *config_dir, const char *name,
		    struct lp_err *err, char **ret_dir)
{
	char alt[LP_REG_HOST_MAX + 2];
	const char *cand[3];
	size_t n = candidates(name, alt, cand), i;
	int r = 0;

	*ret_dir = NULL;
	for (i = 0; i < n; i++) {
		struct stat st;
		char *dir = NULL;

		r = join(config_dir, cand[i], err, &dir);
		if (r < 0)
			return r;
		if (stat(dir, &st) == 0) {
			*ret_dir = dir;
			return 0;
		}
		r = -errno;
		if (r != -ENOENT) {
			lp_err_set(err, r, "%s: %s", dir, strerror(-r));
			free(dir);
			return r;
		}
		free(dir);
	}
	return 0;
}

/* the last host without a server: the registry itself, as containerd */
static int fill_default(struct lp_host *h, const char *registry,
			const struct lp_reg_opts *o)
{
	bool plain = false;
	size_t i;

	if (is_hub(registry)) {
		h->host = strdup(LP_REG_DOCKER_HUB);
	} else {
		h->host = strdup(registry);
		if (o->loopback_plain_http &&
		    lp_reg_host_is_loopback(registry)) {
			plain = true;
			h->skip_verify = true; /* as containerd for localhost */
		}
		for (i = 0; o->insecure_hosts && o->insecure_hosts[i]; i++)
			if (!strcmp(o->insecure_hosts[i], registry))
				plain = true;
	}
	h->scheme = strdup(plain ? "http" : "https");
	h->path = strdup("/v2");
	h->caps = LP_HOST_CAP_ALL;
	return h->host && h->scheme && h->path ? 0 : -ENOMEM;
}

/* FNV-1a over @len bytes, on from @h */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len--) {
		h ^= *p++;
		h *= 1099511628211ull;
	}
	return h;
}

/* @h extended by what stat() says of @path: its absence too; *@newest
 * raised to its change time */
static uint64_t stamp_path(uint64_t h, const char *path, int64_t *newest)
{
	struct stat st;
	int64_t v[6] = { 0 };

	if (stat(path, &st) == 0) {
		v[0] = (int64_t)st.st_dev;
		v[1] = (int64_t)st.st_ino;
		v[2] = (int64_t)st.st_size;
		v[3] = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		       st.st_mtim.tv_nsec;
		v[4] = (int64_t)st.st_ctim.tv_sec * 1000000000 +
		       st.st_ctim.tv_nsec;
		v[5] = 1;
		if (v[3] > *newest)
			*newest = v[3];
		if (v[4] > *newest)
			*newest = v[4];
	}
	h = fnv(h, path, strlen(path) + 1);
	return fnv(h, v, sizeof(v));
}

int lp_hosts_stamp(const char *config_dir, const char *registry,
		   const struct lp_hosts *hosts, uint64_t *ret_stamp,
		   int64_t *ret_newest_ns)
{
	int64_t newest = 0;
	const char *name = is_hub(registry) ? "docker.io" : registry;
	char alt[LP_REG_HOST_MAX + 2];
	const char *cand[3];
	uint64_t h = 14695981039346656037ull;
	size_t n, i, j;
	char *dir = NULL, *file = NULL;
	int r;

	if (!config_dir || !config_dir[0] || !valid_registry(registry))
		return -EINVAL;
	n = candidates(name, alt, cand);
	for (i = 0; i < n; i++) {
		r = join(config_dir, cand[i], NULL, &dir);
		if (r < 0)
			return r;
		r = join(dir, "hosts.toml", NULL, &file);
		if (r < 0) {
			free(dir);
			return r;
		}
		/* the directory's own stat: files made, renamed or gone */
		h = stamp_path(stamp_path(h, dir, &newest), file, &newest);
		free(dir);
		free(file);
	}
	for (i = 0; hosts && i < hosts->n; i++) {
		const struct lp_host *e = &hosts->v[i];

		for (j = 0; j < e->n_ca; j++)
			h = stamp_path(h, e->ca[j], &newest);
		for (j = 0; j < e->n_clients; j++) {
			h = stamp_path(h, e->clients[j].cert, &newest);
			if (e->clients[j].key)
				h = stamp_path(h, e->clients[j].key, &newest);
		}
	}
	*ret_stamp = h;
	if (ret_newest_ns)
		*ret_newest_ns = newest;
	return 0;
}

int lp_hosts_resolve(const char *config_dir, const char *registry,
		     const struct lp_reg_opts *opts, unsigned int need,
		     struct lp_hosts **ret_hosts, struct lp_err *err)
{
	struct lp_hosts *hosts = NULL;
	struct lp_reg_opts defaults;
	struct lp_host *last;
	char *dir = NULL;
	size_t i, kept = 0;
	int r;

	if (!config_dir || !config_dir[0])
		return lp_err_set(err, -EINVAL, "no registry config directory");
	if (!valid_registry(registry))
		return lp_err_set(err, -EINVAL,
				  "\"%.64s\": not a registry host", registry);
	if (!opts) {
		lp_reg_opts_init(&defaults);
		opts = &defaults;
	}
	r = find_dir(config_dir, is_hub(registry) ? "docker.io" : registry, err,
		     &dir);
	if (r < 0)
		goto out;
	r = dir ? load_dir(dir, &hosts, err) : new_list(1, &hosts);
	if (r < 0)
		goto out;
	last = &hosts->v[hosts->n - 1];
	if (!last->host) {
		r = fill_default(last, registry, opts);
		if (r < 0)
			goto out;
	}
	for (i = 0; i < hosts->n; i++) {
		if ((hosts->v[i].caps & need) == need)
			hosts->v[kept++] = hosts->v[i];
		else
			reg_hosts_release(&hosts->v[i]);
	}
	hosts->n = kept;
	if (!kept) {
		r = lp_err_set(err, -ENOENT,
			       "%s: no host for %s may be used for this",
			       dir ? dir : config_dir, registry);
		goto out;
	}
	*ret_hosts = hosts;
	hosts = NULL;
out:
	lp_hosts_free(hosts);
	free(dir);
	return r;
}
