// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshotter's configuration: defaults, and a JSON file (json-c) whose
 * fields override them; command-line flags override the file (cmd/). The
 * reference of every field is in docs/snapshotter.md.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lp_buf.h"
#include "lp_index_sig.h"
#include "lp_fs.h"
#include "lp_snapshotter.h"

#define CONFIG_FUSE_THREADS_MAX 64
#define CONFIG_GRPC_THREADS_MAX 64
#define CONFIG_PREFETCH_TIMEOUT_MAX (3600u * 1000u)

int lp_snap_config_set_str(char **field, const char *value)
{
	char *v = NULL;

	if (value) {
		if (strlen(value) >= LP_SNAP_PATH_MAX)
			return -ENAMETOOLONG;
		v = strdup(value);
		if (!v)
			return -ENOMEM;
	}
	free(*field);
	*field = v;
	return 0;
}

int lp_snap_config_init(struct lp_snap_config *c)
{
	memset(c, 0, sizeof(*c));
	c->prefetch = true;
	c->index_lookup = true;
	c->profile_lookup = true;
	c->unserved_timeout_s = LP_SNAP_DEFAULT_UNSERVED_TIMEOUT_S;
	c->background_fetch = true;
	c->background_quiet_ms = LP_FS_DEFAULT_BACKGROUND_QUIET_MS;
	if (lp_snap_config_set_str(&c->root, LP_SNAP_DEFAULT_ROOT) < 0 ||
	    lp_snap_config_set_str(&c->address, LP_SNAP_DEFAULT_ADDRESS) < 0) {
		lp_snap_config_release(c);
		return -ENOMEM;
	}
	return 0;
}

int lp_snap_config_add_insecure(struct lp_snap_config *c, const char *host)
{
	if (c->n_insecure >= LP_SNAP_INSECURE_MAX)
		return -E2BIG;
	c->insecure[c->n_insecure] = strdup(host);
	if (!c->insecure[c->n_insecure])
		return -ENOMEM;
	c->n_insecure++;
	c->insecure[c->n_insecure] = NULL;
	return 0;
}

int lp_snap_config_add_index_dir(struct lp_snap_config *c, const char *dir)
{
	if (c->n_index_dirs >= LP_SNAP_INDEX_DIRS_MAX)
		return -E2BIG;
	/* absolute, like root and address: the daemon's cwd is no anchor */
	if (dir[0] != '/' || strlen(dir) >= LP_SNAP_PATH_MAX)
		return -EINVAL;
	c->index_dirs[c->n_index_dirs] = strdup(dir);
	if (!c->index_dirs[c->n_index_dirs])
		return -ENOMEM;
	c->n_index_dirs++;
	c->index_dirs[c->n_index_dirs] = NULL;
	return 0;
}

int lp_snap_config_add_trusted_key(struct lp_snap_config *c, const char *path)
{
	if (c->n_index_trusted_keys >= LP_SNAP_TRUSTED_KEYS_MAX)
		return -E2BIG;
	if (path[0] != '/' || strlen(path) >= LP_SNAP_PATH_MAX)
		return -EINVAL;
	c->index_trusted_keys[c->n_index_trusted_keys] = strdup(path);
	if (!c->index_trusted_keys[c->n_index_trusted_keys])
		return -ENOMEM;
	c->n_index_trusted_keys++;
	c->index_trusted_keys[c->n_index_trusted_keys] = NULL;
	return 0;
}

void lp_snap_config_release(struct lp_snap_config *c)
{
	size_t i;

	free(c->root);
	free(c->address);
	free(c->metrics_address);
	free(c->docker_config_dir);
	free(c->registry_config_dir);
	free(c->cri_listen);
	free(c->cri_upstream);
	for (i = 0; i < c->n_insecure; i++)
		free(c->insecure[i]);
	for (i = 0; i < c->n_index_dirs; i++)
		free(c->index_dirs[i]);
	for (i = 0; i < c->n_index_trusted_keys; i++)
		free(c->index_trusted_keys[i]);
	memset(c, 0, sizeof(*c));
}

static int get_str(struct json_object *o, const char *key, char **field,
		   struct lp_err *err)
{
	struct json_object *v;
	int r;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return lp_err_set(err, -EINVAL, "config: %s: want a string",
				  key);
	r = lp_snap_config_set_str(field, json_object_get_string(v));
	return r < 0 ? lp_err_set(err, r, "config: %s: %s", key, strerror(-r)) :
		       0;
}

/* each of index_trusted_keys is an Ed25519 public key in PEM we can read:
 * else the daemon does not start, naming it (never a mount's failure) */
static int check_trusted_keys(const struct lp_snap_config *c,
			      struct lp_err *err)
{
	struct lp_index_keys *k = NULL;
	struct lp_err why = { 0 };
	size_t i;
	int r;

	r = lp_index_keys_new(&k);
	for (i = 0; r == 0 && i < c->n_index_trusted_keys; i++) {
		r = lp_index_keys_load(k, c->index_trusted_keys[i], &why);
		if (r < 0)
			lp_err_set(err, r,
				   "config: index_trusted_keys[%zu]: %s", i,
				   lp_err_str(&why, r));
	}
	lp_index_keys_free(k);
	return r;
}

static int get_bool(struct json_object *o, const char *key, bool *field,
		    struct lp_err *err)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return lp_err_set(err, -EINVAL, "config: %s: want true/false",
				  key);
	*field = json_object_get_boolean(v);
	return 0;
}

static int get_u64(struct json_object *o, const char *key, uint64_t max,
		   uint64_t *ret, bool *present, struct lp_err *err)
{
	struct json_object *v;
	int64_t n;

	*present = false;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return lp_err_set(err, -EINVAL, "config: %s: want an integer",
				  key);
	n = json_object_get_int64(v);
	if (n < 0 || (uint64_t)n > max)
		return lp_err_set(err, -EINVAL,
				  "config: %s: %lld out of range [0, %llu]",
				  key, (long long)n, (unsigned long long)max);
	*ret = (uint64_t)n;
	*present = true;
	return 0;
}

/* @key: an array of strings, each added with @add */
static int get_str_list(struct json_object *o, const char *key,
			struct lp_snap_config *c,
			int (*add)(struct lp_snap_config *c, const char *s),
			struct lp_err *err)
{
	struct json_object *v, *e;
	size_t i;
	int r;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return lp_err_set(err, -EINVAL, "config: %s: want an array",
				  key);
	for (i = 0; i < json_object_array_length(v); i++) {
		e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string))
			return lp_err_set(err, -EINVAL,
					  "config: %s[%zu]: want a string", key,
					  i);
		r = add(c, json_object_get_string(e));
		if (r < 0)
			return lp_err_set(
				err, r, "config: %s[%zu]: %s", key, i,
				r == -E2BIG  ? "too many entries" :
				r == -EINVAL ? "want an absolute path" :
					       strerror(-r));
	}
	return 0;
}

static int apply(struct lp_snap_config *c, struct json_object *o,
		 struct lp_err *err)
{
	struct json_object *v, *e;
	bool present;
	uint64_t n;
	size_t i;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return lp_err_set(err, -EINVAL, "config: want a JSON object");
	if ((r = get_str(o, "root", &c->root, err)) ||
	    (r = get_str(o, "address", &c->address, err)) ||
	    (r = get_str(o, "metrics_address", &c->metrics_address, err)) ||
	    (r = get_str(o, "docker_config_dir", &c->docker_config_dir, err)) ||
	    (r = get_str(o, "registry_config_dir", &c->registry_config_dir,
			 err)) ||
	    (r = get_str(o, "cri_listen", &c->cri_listen, err)) ||
	    (r = get_str(o, "cri_upstream", &c->cri_upstream, err)) ||
	    (r = get_bool(o, "prefetch", &c->prefetch, err)) ||
	    (r = get_bool(o, "background_fetch", &c->background_fetch, err)) ||
	    (r = get_bool(o, "strict", &c->strict, err)) ||
	    (r = get_bool(o, "index_lookup", &c->index_lookup, err)) ||
	    (r = get_bool(o, "profile_lookup", &c->profile_lookup, err)) ||
	    (r = get_bool(o, "index_window_rule", &c->index_window_rule, err)))
		return r;
	r = get_u64(o, "memory_cache_bytes", SIZE_MAX, &n, &present, err);
	if (r)
		return r;
	if (present)
		c->mem_cache_bytes = (size_t)n;
	r = get_u64(o, "disk_cache_bytes", UINT64_MAX >> 1, &n, &present, err);
	if (r)
		return r;
	if (present)
		c->disk_cache_bytes = n;
	r = get_u64(o, "prefetch_timeout_ms", CONFIG_PREFETCH_TIMEOUT_MAX, &n,
		    &present, err);
	if (r)
		return r;
	if (present)
		c->prefetch_timeout_ms = (unsigned int)n;
	r = get_u64(o, "background_quiet_ms", LP_FS_MAX_BACKGROUND_QUIET_MS, &n,
		    &present, err);
	if (r)
		return r;
	if (present)
		c->background_quiet_ms = (unsigned int)n;
	r = get_u64(o, "fuse_threads", CONFIG_FUSE_THREADS_MAX, &n, &present,
		    err);
	if (r)
		return r;
	if (present)
		c->fuse_threads = (unsigned int)n;
	r = get_u64(o, "grpc_threads", CONFIG_GRPC_THREADS_MAX, &n, &present,
		    err);
	if (r)
		return r;
	if (present)
		c->grpc_threads = (unsigned int)n;
	r = get_u64(o, "unserved_timeout_s", LP_SNAP_UNSERVED_TIMEOUT_MAX, &n,
		    &present, err);
	if (r)
		return r;
	if (present)
		c->unserved_timeout_s = (unsigned int)n;
	r = get_str_list(o, "index_dirs", c, lp_snap_config_add_index_dir, err);
	if (r)
		return r;
	r = get_str_list(o, "index_trusted_keys", c,
			 lp_snap_config_add_trusted_key, err);
	if (r)
		return r;
	r = check_trusted_keys(c, err);
	if (r)
		return r;
	if (json_object_object_get_ex(o, "insecure_registries", &v)) {
		if (!json_object_is_type(v, json_type_array))
			return lp_err_set(err, -EINVAL,
					  "config: "
					  "insecure_registries: want an array");
		for (i = 0; i < json_object_array_length(v); i++) {
			e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string))
				return lp_err_set(err, -EINVAL,
						  "config: insecure_registries"
						  "[%zu]: want a string",
						  i);
			r = lp_snap_config_add_insecure(
				c, json_object_get_string(e));
			if (r < 0)
				return lp_err_set(err, r,
						  "config: "
						  "insecure_registries: %s",
						  strerror(-r));
		}
	}
	return 0;
}

int lp_snap_config_load(struct lp_snap_config *c, const char *path,
			struct lp_err *err)
{
	struct json_tokener *tok = NULL;
	struct json_object *o = NULL;
	struct lp_buf b;
	char chunk[4096];
	size_t n;
	FILE *f;
	int r = 0;

	lp_buf_init(&b, LP_SNAP_CONFIG_MAX);
	f = fopen(path, "re");
	if (!f)
		return lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		r = lp_buf_append(&b, chunk, n);
		if (r < 0) {
			lp_err_set(err, r, "%s: bigger than %d bytes", path,
				   LP_SNAP_CONFIG_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		r = lp_err_set(err, -EIO, "%s: read error", path);
		goto out;
	}
	tok = json_tokener_new();
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	o = json_tokener_parse_ex(tok, b.data ? (const char *)b.data : "",
				  (int)b.len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		r = lp_err_set(err, -EINVAL, "%s: not valid JSON", path);
		goto out;
	}
	r = apply(c, o, err);
out:
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	fclose(f);
	lp_buf_release(&b);
	return r;
}
