// SPDX-License-Identifier: Apache-2.0
/*
 * The access record's writer: JSON lines {"path", "layer_digest",
 * "layer_index"}, the format format/prio.c (lp_prio_load) reads for
 * image conversion and the layer converter's list. Written to a temporary file beside
 * the target and renamed, so a reader never sees half a record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lp_optimize.h"

#define RECORD_TMP_SUFFIX ".tmp.XXXXXX"

/* one record as a JSON line (json-c escapes the path) */
static int write_line(FILE *f, const struct lp_opt_record *rec)
{
	char ds[LP_DIGEST_STR_LEN + 1];
	json_object *o = json_object_new_object();
	const char *s;
	int r = -ENOMEM;

	if (!o)
		return -ENOMEM;
	lp_digest_format(&rec->layer_digest, ds);
	if (json_object_object_add(o, "path",
				   json_object_new_string(rec->path)) ||
	    json_object_object_add(o, "layer_digest",
				   json_object_new_string(ds)) ||
	    json_object_object_add(
		    o, "layer_index",
		    json_object_new_int64((int64_t)rec->layer_index)))
		goto out;
	s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s)
		goto out;
	r = fprintf(f, "%s\n", s) < 0 ? -EIO : 0;
out:
	json_object_put(o);
	return r;
}

int lp_opt_record_write(const char *path, const struct lp_opt_record *recs,
			size_t n, struct lp_err *err)
{
	char *tmp = NULL;
	FILE *f = NULL;
	size_t i;
	int fd = -1, r = 0;

	if (!path || !*path)
		return lp_err_set(err, -EINVAL, "no record file name");
	tmp = malloc(strlen(path) + sizeof(RECORD_TMP_SUFFIX));
	if (!tmp) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(tmp, strlen(path) + sizeof(RECORD_TMP_SUFFIX), "%s%s", path,
		 RECORD_TMP_SUFFIX);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		r = lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	for (i = 0; i < n && r == 0; i++)
		r = write_line(f, &recs[i]);
	if (r == 0 && fflush(f) != 0)
		r = -errno;
	if (r == 0 && fchmod(fileno(f), 0644) < 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	f = NULL;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		lp_err_set(err, r, "%s: %s", path, strerror(-r));
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return r;
}
