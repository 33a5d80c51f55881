// SPDX-License-Identifier: Apache-2.0
/*
 * The workload and its OCI bundle: what to run (the image config's
 * Entrypoint + Cmd, or the command line's argv), with the config's Env,
 * WorkingDir and User (names resolved in the container's own /etc/passwd
 * and /etc/group, as container runtimes do), written as a runc
 * config.json close to what Docker would run: its default capabilities,
 * masked /proc paths, no terminal, no rlimit changes.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "optimize_int.h"

#define OPT_BUNDLE_HOSTNAME "lazypull-optimize"
#define OPT_ID_MAX 0xffffffffUL /* uid/gid */

static const char *const default_caps[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
};

static const char *const masked_paths[] = {
	"/proc/acpi",	     "/proc/asound",	    "/proc/kcore",
	"/proc/keys",	     "/proc/latency_stats", "/proc/timer_list",
	"/proc/timer_stats", "/proc/sched_debug",   "/sys/firmware",
	"/proc/scsi",
};

static const char *const readonly_paths[] = {
	"/proc/bus",	       "/proc/fs", "/proc/irq", "/proc/sys",
	"/proc/sysrq-trigger",
};

void opt_workload_release(struct opt_workload *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; w->args && w->args[i]; i++)
		free(w->args[i]);
	for (i = 0; w->env && w->env[i]; i++)
		free(w->env[i]);
	free(w->args);
	free(w->env);
	free(w->cwd);
	free(w->user);
	memset(w, 0, sizeof(*w));
}

/* append a copy of @s to the NULL-ended array *@v holding *@n strings */
static int push(char ***v, size_t *n, size_t max, const char *s)
{
	char **nv;

	if (*n >= max)
		return -EFBIG;
	nv = realloc(*v, (*n + 2) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

/* the strings of array member @key of @cfg appended to *@v */
static int push_array(json_object *cfg, const char *key, char ***v, size_t *n,
		      size_t max)
{
	json_object *a, *e;
	size_t i;
	int r = 0;

	if (!json_object_object_get_ex(cfg, key, &a) ||
	    !json_object_is_type(a, json_type_array))
		return 0; /* absent or null */
	for (i = 0; i < json_object_array_length(a) && r == 0; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string))
			return -EINVAL;
		r = push(v, n, max, json_object_get_string(e));
	}
	return r;
}

static const char *str_member(json_object *cfg, const char *key)
{
	json_object *v;

	if (cfg && json_object_object_get_ex(cfg, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

int opt_workload_from_config(const char *config, const char *const *argv,
			     struct opt_workload *w, struct lp_err *err)
{
	json_object *root = NULL, *cfg = NULL;
	size_t na = 0, ne = 0, i;
	bool have_path = false;
	const char *s;
	int r = 0;

	memset(w, 0, sizeof(*w));
	root = json_tokener_parse(config);
	if (!root || !json_object_is_type(root, json_type_object)) {
		r = lp_err_set(err, -EINVAL, "the image config is not JSON");
		goto out;
	}
	/* "config" is optional (an image may have none of it) */
	if (!json_object_object_get_ex(root, "config", &cfg) ||
	    !json_object_is_type(cfg, json_type_object))
		cfg = NULL;
	if (argv && argv[0]) {
		for (i = 0; argv[i] && r == 0; i++)
			r = push(&w->args, &na, LP_OPT_MAX_ARGS, argv[i]);
	} else if (cfg) {
		r = push_array(cfg, "Entrypoint", &w->args, &na,
			       LP_OPT_MAX_ARGS);
		if (r == 0)
			r = push_array(cfg, "Cmd", &w->args, &na,
				       LP_OPT_MAX_ARGS);
	}
	if (r == 0 && !na)
		r = lp_err_set(err, -EINVAL,
			       "the image has no command (no Entrypoint or "
			       "Cmd in its config): give one after '--'");
	if (r == 0 && cfg)
		r = push_array(cfg, "Env", &w->env, &ne, LP_OPT_MAX_ENV);
	for (i = 0; r == 0 && i < ne; i++)
		have_path |= !strncmp(w->env[i], "PATH=", 5);
	if (r == 0 && !have_path)
		r = push(&w->env, &ne, LP_OPT_MAX_ENV + 1, OPT_DEFAULT_PATH);
	if (r < 0) {
		lp_err_set(err, r, "the image config: %s",
			   r == -EINVAL ? "Entrypoint, Cmd or Env is not an "
					  "array of strings" :
					  strerror(-r));
		goto out;
	}
	s = str_member(cfg, "WorkingDir");
	w->cwd = strdup(*s == '/' ? s : "/");
	w->user = strdup(str_member(cfg, "User"));
	if (!w->cwd || !w->user)
		r = lp_err_set(err, -ENOMEM, "out of memory");
out:
	json_object_put(root);
	if (r < 0)
		opt_workload_release(w);
	return r;
}

static bool parse_id(const char *s, uint32_t *ret)
{
	unsigned long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > OPT_ID_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/*
 * In @rootfs/@db (passwd or group), the line whose field @key_field is
 * @key; its fields 2 and 3 (uid/gid for passwd, gid for group) go to
 * @ret_a/@ret_b. Returns 0, -ENOENT.
 */
static int db_lookup(const char *rootfs, const char *db, int key_field,
		     const char *key, uint32_t *ret_a, uint32_t *ret_b)
{
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	FILE *f;
	int r = -ENOENT;

	snprintf(path, sizeof(path), "%s/etc/%s", rootfs, db);
	f = fopen(path, "re");
	if (!f)
		return -ENOENT;
	while (r == -ENOENT && (n = getline(&line, &cap, f)) > 0) {
		char *field[4] = { 0 }, *save = NULL, *p = line;
		int i;

		total += (size_t)n;
		if (total > OPT_USER_DB_MAX)
			break;
		line[strcspn(line, "\n")] = 0;
		/* strsep: empty fields (no password) count */
		for (i = 0; i < 4 && p; i++)
			field[i] = strsep(&p, ":");
		(void)save;
		if (i < 3 || !field[key_field] || strcmp(field[key_field], key))
			continue;
		if (!parse_id(field[2], ret_a))
			continue;
		if (ret_b && (!field[3] || !parse_id(field[3], ret_b)))
			continue;
		r = 0;
	}
	free(line);
	fclose(f);
	return r;
}

int opt_workload_resolve_user(struct opt_workload *w, const char *rootfs,
			      struct lp_err *err)
{
	char *user = NULL, *group;
	uint32_t uid = 0, gid = 0, dummy;
	int r = 0;

	w->uid = w->gid = 0;
	if (!*w->user)
		return 0;
	user = strdup(w->user);
	if (!user)
		return -ENOMEM;
	group = strchr(user, ':');
	if (group)
		*group++ = 0;
	if (parse_id(user, &uid)) {
		char num[16];

		/* a numeric user takes its passwd gid when it has one */
		snprintf(num, sizeof(num), "%u", uid);
		if (db_lookup(rootfs, "passwd", 2, num, &dummy, &gid) < 0)
			gid = 0;
	} else if (db_lookup(rootfs, "passwd", 0, user, &uid, &gid) < 0) {
		r = lp_err_set(err, -EINVAL,
			       "user '%s' (the image's User) is not in the "
			       "image's /etc/passwd",
			       user);
		goto out;
	}
	if (group && *group && !parse_id(group, &gid) &&
	    db_lookup(rootfs, "group", 0, group, &gid, NULL) < 0) {
		r = lp_err_set(err, -EINVAL,
			       "group '%s' (the image's User) is not in the "
			       "image's /etc/group",
			       group);
		goto out;
	}
	w->uid = uid;
	w->gid = gid;
out:
	free(user);
	return r;
}

/* ---- config.json ---- */

static json_object *str_array(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	size_t i;

	for (i = 0; a && (n == SIZE_MAX ? v[i] != NULL : i < n); i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* {"destination", "type", "source", "options": [...]} */
static json_object *mount_json(const char *dst, const char *type,
			       const char *src, const char *const *opts)
{
	json_object *m = json_object_new_object();

	json_object_object_add(m, "destination", json_object_new_string(dst));
	json_object_object_add(m, "type", json_object_new_string(type));
	json_object_object_add(m, "source", json_object_new_string(src));
	if (opts)
		json_object_object_add(m, "options", str_array(opts, SIZE_MAX));
	return m;
}

static json_object *process_json(const struct opt_workload *w)
{
	json_object *p = json_object_new_object(), *u, *caps;
	size_t nc = sizeof(default_caps) / sizeof(default_caps[0]);

	json_object_object_add(p, "terminal", json_object_new_boolean(0));
	u = json_object_new_object();
	json_object_object_add(u, "uid", json_object_new_int64(w->uid));
	json_object_object_add(u, "gid", json_object_new_int64(w->gid));
	json_object_object_add(p, "user", u);
	json_object_object_add(
		p, "args", str_array((const char *const *)w->args, SIZE_MAX));
	json_object_object_add(
		p, "env", str_array((const char *const *)w->env, SIZE_MAX));
	json_object_object_add(p, "cwd", json_object_new_string(w->cwd));
	caps = json_object_new_object();
	json_object_object_add(caps, "bounding", str_array(default_caps, nc));
	json_object_object_add(caps, "effective", str_array(default_caps, nc));
	json_object_object_add(caps, "permitted", str_array(default_caps, nc));
	json_object_object_add(p, "capabilities", caps);
	json_object_object_add(p, "noNewPrivileges",
			       json_object_new_boolean(0));
	return p;
}

static json_object *mounts_json(bool net_host)
{
	static const char *const dev_o[] = { "nosuid", "strictatime",
					     "mode=755", "size=65536k", NULL };
	static const char *const pts_o[] = { "nosuid",	    "noexec",
					     "newinstance", "ptmxmode=0666",
					     "mode=0620",   "gid=5",
					     NULL };
	static const char *const shm_o[] = { "nosuid",	    "noexec",
					     "nodev",	    "mode=1777",
					     "size=65536k", NULL };
	static const char *const mq_o[] = { "nosuid", "noexec", "nodev", NULL };
	static const char *const sys_o[] = { "nosuid", "noexec", "nodev", "ro",
					     NULL };
	static const char *const bind_o[] = { "rbind", "ro", NULL };
	json_object *a = json_object_new_array();

	json_object_array_add(a, mount_json("/proc", "proc", "proc", NULL));
	json_object_array_add(a, mount_json("/dev", "tmpfs", "tmpfs", dev_o));
	json_object_array_add(
		a, mount_json("/dev/pts", "devpts", "devpts", pts_o));
	json_object_array_add(a, mount_json("/dev/shm", "tmpfs", "shm", shm_o));
	json_object_array_add(
		a, mount_json("/dev/mqueue", "mqueue", "mqueue", mq_o));
	/* sysfs needs the network namespace it describes: bind it on host */
	if (net_host)
		json_object_array_add(
			a, mount_json("/sys", "bind", "/sys", bind_o));
	else
		json_object_array_add(
			a, mount_json("/sys", "sysfs", "sysfs", sys_o));
	if (net_host) {
		json_object_array_add(a,
				      mount_json("/etc/resolv.conf", "bind",
						 "/etc/resolv.conf", bind_o));
		json_object_array_add(a, mount_json("/etc/hosts", "bind",
						    "/etc/hosts", bind_o));
	}
	return a;
}

static json_object *linux_json(bool net_host)
{
	static const char *const ns[] = { "pid", "ipc", "uts", "mount",
					  "network" };
	size_t i, nns = sizeof(ns) / sizeof(ns[0]) - (net_host ? 1 : 0);
	json_object *l = json_object_new_object(), *a, *res, *dev, *d;

	a = json_object_new_array();
	for (i = 0; i < nns; i++) {
		json_object *n = json_object_new_object();

		json_object_object_add(n, "type",
				       json_object_new_string(ns[i]));
		json_object_array_add(a, n);
	}
	json_object_object_add(l, "namespaces", a);
	/* runc adds the standard devices (null, zero, tty...) itself */
	res = json_object_new_object();
	dev = json_object_new_array();
	d = json_object_new_object();
	json_object_object_add(d, "allow", json_object_new_boolean(0));
	json_object_object_add(d, "access", json_object_new_string("rwm"));
	json_object_array_add(dev, d);
	json_object_object_add(res, "devices", dev);
	json_object_object_add(l, "resources", res);
	json_object_object_add(
		l, "maskedPaths",
		str_array(masked_paths,
			  sizeof(masked_paths) / sizeof(masked_paths[0])));
	json_object_object_add(
		l, "readonlyPaths",
		str_array(readonly_paths,
			  sizeof(readonly_paths) / sizeof(readonly_paths[0])));
	return l;
}

int opt_bundle_write(const char *dir, const char *rootfs,
		     const struct opt_workload *w, bool net_host,
		     struct lp_err *err)
{
	json_object *spec = json_object_new_object(), *root;
	char path[PATH_MAX];
	const char *s;
	FILE *f = NULL;
	int r = 0;

	if (!spec)
		return lp_err_set(err, -ENOMEM, "out of memory");
	json_object_object_add(spec, "ociVersion",
			       json_object_new_string("1.0.2"));
	json_object_object_add(spec, "process", process_json(w));
	root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string(rootfs));
	json_object_object_add(root, "readonly", json_object_new_boolean(0));
	json_object_object_add(spec, "root", root);
	json_object_object_add(spec, "hostname",
			       json_object_new_string(OPT_BUNDLE_HOSTNAME));
	json_object_object_add(spec, "mounts", mounts_json(net_host));
	json_object_object_add(spec, "linux", linux_json(net_host));
	s = json_object_to_json_string_ext(
		spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "we");
	if (!s || !f || fputs(s, f) < 0 || fflush(f) != 0) {
		r = -(errno ? errno : ENOMEM);
		lp_err_set(err, r, "%s: %s", path, strerror(-r));
	}
	if (f)
		fclose(f);
	json_object_put(spec);
	return r;
}
