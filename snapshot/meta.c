// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshotter's metadata in SQLite: snapshots (key or committed name,
 * parent, kind, timestamps, usage, the layer digest of remote snapshots),
 * their labels, and the facts needed to mount a remote layer again after a
 * restart (reference, size, TOC digest). WAL journal with synchronous=FULL:
 * a committed transaction survives kill -9 and power loss. Not thread-safe:
 * the service serialises every call.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_log.h"
#include "snap_int.h"

#define META_BUSY_TIMEOUT_MS 5000

struct lp_snap_meta {
	sqlite3 *db;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"PRAGMA foreign_keys=ON;"
	"CREATE TABLE IF NOT EXISTS snapshots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  key TEXT NOT NULL UNIQUE,"
	"  parent TEXT NOT NULL DEFAULT '',"
	"  kind INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  size INTEGER NOT NULL DEFAULT 0,"
	"  inodes INTEGER NOT NULL DEFAULT 0,"
	"  layer TEXT);"
	"CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);"
	"CREATE INDEX IF NOT EXISTS snapshots_layer ON snapshots(layer);"
	"CREATE TABLE IF NOT EXISTS labels ("
	"  id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (id, name));"
	"CREATE TABLE IF NOT EXISTS layers ("
	"  digest TEXT PRIMARY KEY,"
	"  ref TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  toc_digest TEXT NOT NULL,"
	"  kind INTEGER NOT NULL DEFAULT 0);";

/* a database made before layers.kind: the column added (0: TOC) */
static const char add_layer_kind[] =
	"ALTER TABLE layers ADD COLUMN kind INTEGER NOT NULL DEFAULT 0";

void lp_snap_rec_clear(struct lp_snap_rec *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_labels; i++) {
		free(r->labels[i].key);
		free(r->labels[i].value);
	}
	free(r->labels);
	free(r->key);
	free(r->parent);
	free(r->layer);
	memset(r, 0, sizeof(*r));
}

const char *lp_snap_rec_label(const struct lp_snap_rec *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->n_labels; i++)
		if (!strcmp(r->labels[i].key, key))
			return r->labels[i].value;
	return NULL;
}

int lp_snap_rec_copy(const struct lp_snap_rec *r, struct lp_snap_rec *ret)
{
	size_t i;

	*ret = *r;
	ret->key = strdup(r->key);
	ret->parent = strdup(r->parent);
	ret->layer = r->layer ? strdup(r->layer) : NULL;
	ret->labels =
		calloc(r->n_labels ? r->n_labels : 1, sizeof(*ret->labels));
	ret->n_labels = 0;
	if (!ret->key || !ret->parent || (r->layer && !ret->layer) ||
	    !ret->labels)
		goto fail;
	for (i = 0; i < r->n_labels; i++) {
		ret->labels[i].key = strdup(r->labels[i].key);
		ret->labels[i].value = strdup(r->labels[i].value);
		ret->n_labels++;
		if (!ret->labels[i].key || !ret->labels[i].value)
			goto fail;
	}
	return 0;
fail:
	lp_snap_rec_clear(ret);
	return -ENOMEM;
}

static int exec_sql(struct lp_snap_meta *m, const char *sql)
{
	char *msg = NULL;
	int r = 0;

	if (sqlite3_exec(m->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		lp_log_err("metadata: %s: %s", sql, msg ? msg : "?");
		r = -EIO;
	}
	sqlite3_free(msg);
	return r;
}

int lp_snap_meta_open(const char *path, struct lp_snap_meta **ret_meta,
		      struct lp_err *err)
{
	struct lp_snap_meta *m = NULL;
	char *msg = NULL;
	int r = 0;

	m = calloc(1, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	if (sqlite3_open_v2(path, &m->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		r = lp_err_set(err, -EIO, "%s: %s", path,
			       m->db ? sqlite3_errmsg(m->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(m->db, META_BUSY_TIMEOUT_MS);
	if (sqlite3_exec(m->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		r = lp_err_set(err, -EIO, "%s: schema: %s", path,
			       msg ? msg : "?");
		goto out;
	}
	if (sqlite3_exec(m->db, add_layer_kind, NULL, NULL, &msg) !=
		    SQLITE_OK &&
	    (!msg || strncmp(msg, "duplicate column name", 21))) {
		r = lp_err_set(err, -EIO, "%s: schema: %s", path,
			       msg ? msg : "?");
		goto out;
	}
	*ret_meta = m;
	m = NULL;
out:
	sqlite3_free(msg);
	lp_snap_meta_free(m);
	return r;
}

void lp_snap_meta_free(struct lp_snap_meta *m)
{
	if (!m)
		return;
	sqlite3_close(m->db);
	free(m);
}

int lp_snap_meta_begin(struct lp_snap_meta *m)
{
	return exec_sql(m, "BEGIN IMMEDIATE");
}

int lp_snap_meta_commit(struct lp_snap_meta *m)
{
	return exec_sql(m, "COMMIT");
}

void lp_snap_meta_rollback(struct lp_snap_meta *m)
{
	if (sqlite3_get_autocommit(m->db))
		return; /* nothing open */
	exec_sql(m, "ROLLBACK");
}

static int prepare(struct lp_snap_meta *m, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(m->db, sql, -1, st, NULL) != SQLITE_OK) {
		lp_log_err("metadata: %s: %s", sql, sqlite3_errmsg(m->db));
		return -EIO;
	}
	return 0;
}

static char *col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? strdup((const char *)t) : NULL;
}

static int load_labels(struct lp_snap_meta *m, struct lp_snap_rec *r)
{
	sqlite3_stmt *st = NULL;
	struct lp_snap_label *v;
	int rc, ret = 0;

	ret = prepare(m,
		      "SELECT name, value FROM labels WHERE id = ? "
		      "ORDER BY name",
		      &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, r->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = realloc(r->labels, (r->n_labels + 1) * sizeof(*v));
		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		r->labels = v;
		v[r->n_labels].key = col_dup(st, 0);
		v[r->n_labels].value = col_dup(st, 1);
		r->n_labels++;
		if (!v[r->n_labels - 1].key || !v[r->n_labels - 1].value) {
			ret = -ENOMEM;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		ret = -EIO;
out:
	sqlite3_finalize(st);
	return ret;
}

#define REC_COLUMNS \
	"id, key, parent, kind, created, updated, size, inodes, layer"

static int row_to_rec(struct lp_snap_meta *m, sqlite3_stmt *st,
		      struct lp_snap_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->key = col_dup(st, 1);
	r->parent = col_dup(st, 2);
	r->kind = (enum lp_snap_kind)sqlite3_column_int(st, 3);
	r->created_ns = sqlite3_column_int64(st, 4);
	r->updated_ns = sqlite3_column_int64(st, 5);
	r->size = sqlite3_column_int64(st, 6);
	r->inodes = sqlite3_column_int64(st, 7);
	if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
		r->layer = col_dup(st, 8);
		if (!r->layer)
			return -ENOMEM;
	}
	if (!r->key || !r->parent)
		return -ENOMEM;
	return load_labels(m, r);
}

int lp_snap_meta_get(struct lp_snap_meta *m, const char *key,
		     struct lp_snap_rec *ret)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	memset(ret, 0, sizeof(*ret));
	r = prepare(m, "SELECT " REC_COLUMNS " FROM snapshots WHERE key = ?",
		    &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		r = -ENOENT;
	else if (rc != SQLITE_ROW)
		r = -EIO;
	else
		r = row_to_rec(m, st, ret);
	if (r < 0)
		lp_snap_rec_clear(ret);
out:
	sqlite3_finalize(st);
	return r;
}

static int write_labels(struct lp_snap_meta *m, const struct lp_snap_rec *r)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int ret;

	ret = prepare(m, "DELETE FROM labels WHERE id = ?", &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, r->id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		ret = -EIO;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	ret = prepare(m, "INSERT INTO labels (id, name, value) VALUES (?,?,?)",
		      &st);
	if (ret < 0)
		goto out;
	for (i = 0; i < r->n_labels; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_text(st, 2, r->labels[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->labels[i].value, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			ret = -EIO;
			goto out;
		}
	}
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_insert(struct lp_snap_meta *m, struct lp_snap_rec *r)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	r->created_ns = r->updated_ns = lp_snap_now_ns();
	ret = prepare(m,
		      "INSERT INTO snapshots (key, parent, kind, created, "
		      "updated, size, inodes, layer) VALUES (?,?,?,?,?,?,?,?)",
		      &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->parent ? r->parent : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)r->kind);
	sqlite3_bind_int64(st, 4, r->created_ns);
	sqlite3_bind_int64(st, 5, r->updated_ns);
	sqlite3_bind_int64(st, 6, r->size);
	sqlite3_bind_int64(st, 7, r->inodes);
	if (r->layer)
		sqlite3_bind_text(st, 8, r->layer, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		ret = -EEXIST;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		lp_log_err("metadata: insert %s: %s", r->key,
			   sqlite3_errmsg(m->db));
		ret = -EIO;
		goto out;
	}
	r->id = sqlite3_last_insert_rowid(m->db);
	ret = write_labels(m, r);
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_update(struct lp_snap_meta *m, const struct lp_snap_rec *r)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = prepare(m,
		      "UPDATE snapshots SET key = ?, kind = ?, created = ?, "
		      "updated = ?, size = ?, inodes = ? WHERE id = ?",
		      &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)r->kind);
	sqlite3_bind_int64(st, 3, r->created_ns);
	sqlite3_bind_int64(st, 4, r->updated_ns);
	sqlite3_bind_int64(st, 5, r->size);
	sqlite3_bind_int64(st, 6, r->inodes);
	sqlite3_bind_int64(st, 7, r->id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		ret = -EEXIST;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = -EIO;
		goto out;
	}
	if (sqlite3_changes(m->db) != 1) {
		ret = -ENOENT;
		goto out;
	}
	ret = write_labels(m, r);
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_delete(struct lp_snap_meta *m, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = prepare(m, "DELETE FROM snapshots WHERE id = ?", &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		ret = -EIO;
out:
	sqlite3_finalize(st);
	return ret;
}

static int count_where(struct lp_snap_meta *m, const char *sql, const char *arg)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = prepare(m, sql, &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		ret = -EIO;
	else
		ret = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_children(struct lp_snap_meta *m, const char *name)
{
	return count_where(m, "SELECT COUNT(*) FROM snapshots WHERE parent = ?",
			   name);
}

int lp_snap_meta_layer_users(struct lp_snap_meta *m, const char *digest)
{
	return count_where(m, "SELECT COUNT(*) FROM snapshots WHERE layer = ?",
			   digest);
}

int lp_snap_meta_has_id(struct lp_snap_meta *m, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = prepare(m, "SELECT 1 FROM snapshots WHERE id = ?", &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = sqlite3_step(st);
	ret = ret == SQLITE_ROW ? 1 : ret == SQLITE_DONE ? 0 : -EIO;
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_walk(struct lp_snap_meta *m, lp_snap_rec_fn fn, void *opaque)
{
	struct lp_snap_rec r = { 0 };
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = prepare(m, "SELECT " REC_COLUMNS " FROM snapshots ORDER BY id",
		      &st);
	if (ret < 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = row_to_rec(m, st, &r);
		if (ret == 0)
			ret = fn(opaque, &r);
		lp_snap_rec_clear(&r);
		if (ret)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = -EIO;
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_layer_put(struct lp_snap_meta *m,
			   const struct lp_snap_layer_facts *f)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = prepare(m,
		      "INSERT OR REPLACE INTO layers (digest, ref, size, "
		      "toc_digest, kind) VALUES (?,?,?,?,?)",
		      &st);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, f->digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, f->ref, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)f->size);
	sqlite3_bind_text(st, 4, f->toc_digest, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, (int)f->kind);
	if (sqlite3_step(st) != SQLITE_DONE)
		ret = -EIO;
out:
	sqlite3_finalize(st);
	return ret;
}

int lp_snap_meta_layer_get(struct lp_snap_meta *m, const char *digest,
			   struct lp_snap_layer_facts *ret)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int rc, r;

	memset(ret, 0, sizeof(*ret));
	r = prepare(m,
		    "SELECT ref, size, toc_digest, kind FROM layers WHERE "
		    "digest = ?",
		    &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = -EIO;
		goto out;
	}
	snprintf(ret->digest, sizeof(ret->digest), "%s", digest);
	ret->ref = col_dup(st, 0);
	ret->size = (uint64_t)sqlite3_column_int64(st, 1);
	t = sqlite3_column_text(st, 2);
	snprintf(ret->toc_digest, sizeof(ret->toc_digest), "%s",
		 t ? (const char *)t : "");
	ret->kind = sqlite3_column_int(st, 3) == LP_SNAP_LAYER_GZIP_INDEX ?
			    LP_SNAP_LAYER_GZIP_INDEX :
			    LP_SNAP_LAYER_TOC;
	if (!ret->ref)
		r = -ENOMEM;
out:
	sqlite3_finalize(st);
	return r;
}
