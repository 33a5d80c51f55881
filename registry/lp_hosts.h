/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's registry host configuration: the hosts.toml files of a
 * certs.d-style directory (DIR/HOST[:PORT]/hosts.toml, DIR/_default), read
 * the way containerd's remotes/docker/config does, into the ordered list of
 * places to fetch a registry's content from: the [host."URL"] mirrors in
 * file order, then the `server` (or the registry itself). Each entry says
 * what it may be used for (pull, resolve, push), which CAs and client
 * certificates its TLS uses and which headers go with its requests.
 *
 * The TOML is read by our own parser of the subset containerd documents
 * (docs/registry-config.md lists it); anything outside the subset is an
 * error naming the file and line, never silently skipped. Keys containerd
 * does not know are ignored, as containerd's TOML decoding ignores them.
 *
 * Nothing here opens a connection or reads a certificate: the list only
 * names files. A struct lp_hosts is immutable once made and may be read
 * from any thread.
 *
 * How to find where to pull a layer of "mirror.test:5000/app" from:
 *	lp_hosts_resolve("/etc/containerd/certs.d", "mirror.test:5000", NULL,
 *			 LP_HOST_CAP_PULL, &hosts, &err);
 *	for (i = 0; i < lp_hosts_count(hosts); i++) {
 *		h = lp_hosts_get(hosts, i);
 *		... h->scheme "://" h->host h->path "/app/blobs/..." ...
 *	}
 *	lp_hosts_free(hosts);
 */
#ifndef LP_HOSTS_H
#define LP_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_err.h"
#include "lp_registry.h"

/* ---- bounds (every one is an error naming it when exceeded) -------- */

#define LP_HOSTS_FILE_MAX (64 * 1024) /* bytes of one hosts.toml */
#define LP_HOSTS_LINE_MAX 4096 /* bytes of one line, without newline */
#define LP_HOSTS_MAX 32 /* hosts of one file, the server included */
#define LP_HOSTS_HEADERS_MAX 32 /* header names of one table */
#define LP_HOSTS_ARRAY_MAX 32 /* elements of one array */
#define LP_HOSTS_STRING_MAX 2048 /* bytes of one string, decoded */
#define LP_HOSTS_KEY_MAX 256 /* bytes of one key, decoded */
#define LP_HOSTS_TABLES_MAX 128 /* tables of one file, implicit ones too */
#define LP_HOSTS_KEYS_MAX 512 /* key = value lines of one file */
#define LP_HOSTS_DEPTH_MAX 8 /* components of one [table.header] */
#define LP_HOSTS_NEST_MAX 2 /* arrays in arrays: [["cert", "key"]] */
#define LP_HOSTS_CERT_FILES_MAX 64 /* *.crt / *.cert without hosts.toml */
#define LP_HOSTS_PATH_MAX 4096 /* a file path after joining, with NUL */

/* What a host may be asked for (containerd's HostCapabilities). */
enum lp_host_cap {
	LP_HOST_CAP_PULL = 1 << 0, /* fetch blobs and manifests by digest */
	LP_HOST_CAP_RESOLVE = 1 << 1, /* turn a tag into a digest */
	LP_HOST_CAP_PUSH = 1 << 2,
	LP_HOST_CAP_ALL =
		LP_HOST_CAP_PULL | LP_HOST_CAP_RESOLVE | LP_HOST_CAP_PUSH,
};

/* A client certificate for TLS client authentication. */
struct lp_host_client {
	char *cert; /* PEM certificate file */
	char *key; /* its private key file; NULL: the key is in @cert */
};

/* One header name with its values, sent in this order. */
struct lp_host_header {
	char *name; /* an HTTP token, as written (not case-folded) */
	char **values;
	size_t n_values;
};

/*
 * One place to talk to, read-only, owned by the struct lp_hosts it came
 * from. A request for repository R goes to SCHEME://HOST PATH/R/...
 * File paths are as written when absolute, else joined to the directory
 * of the hosts.toml (and cleaned: "a/../b" is "b").
 */
struct lp_host {
	/* scheme, host and path are NULL together: see lp_hosts_parse() */
	char *scheme; /* "https" or "http" */
	char *host; /* "mirror:5000", "[::1]:5000" */
	char *path; /* API root: "/v2", "/mirror/v2"; "" with override_path */
	unsigned int caps; /* enum lp_host_cap bits */
	char **ca; /* PEM CA files trusted besides the system ones */
	size_t n_ca;
	struct lp_host_client *clients;
	size_t n_clients;
	bool skip_verify; /* no check of the server's chain and name */
	struct lp_host_header *headers;
	size_t n_headers;
	unsigned int line; /* its [host."URL"] (or `server`) line; 0: none */
};

struct lp_hosts;

/*
 * lp_hosts_parse() - parse @len bytes of hosts.toml @text. @dir is the
 * directory relative `ca` and `client` paths are joined to; @file names the
 * file in error messages. The hosts come in file order, then one entry for
 * the file's top level (`server` and the keys beside it) - always last;
 * its scheme, host and path are NULL when the file names no server,
 * meaning "the registry itself" (lp_hosts_resolve() fills them in). Returns 0 and the list in
 * *ret_hosts (free with lp_hosts_free()); -EINVAL for text outside the
 * supported subset or a value of the wrong type, -EFBIG over an
 * LP_HOSTS_* bound, -EOPNOTSUPP for a key containerd knows that lazypull
 * does not honour (`proxy`), -ENOMEM; on error @err (may be NULL) says
 * "FILE:LINE: what".
 */
int lp_hosts_parse(const char *text, size_t len, const char *dir,
		   const char *file, struct lp_hosts **ret_hosts,
		   struct lp_err *err);

/*
 * lp_hosts_stamp() - a digest of what lp_hosts_resolve(@config_dir,
 * @registry) reads: the stat() (identity, size, times, or absence) of each
 * directory looked for and of its hosts.toml, and of every CA and client
 * certificate and key file @hosts (what it returned; may be NULL) names.
 * Two stamps differ when any of them was made, removed, replaced or
 * written in between (as far as the file systems' timestamps tell; a file
 * added to a directory looked for changes it too). Nothing is read but
 * stat(). *@ret_newest_ns (may be NULL): the latest modification or
 * change time among them (CLOCK_REALTIME ns), to tell a file being written.
 * Returns 0, -EINVAL (as lp_hosts_resolve()), -ENAMETOOLONG, -ENOMEM.
 */
int lp_hosts_stamp(const char *config_dir, const char *registry,
		   const struct lp_hosts *hosts, uint64_t *ret_stamp,
		   int64_t *ret_newest_ns);

/*
 * lp_hosts_resolve() - the hosts to use for @registry ("host[:port]" as in
 * an image reference; "docker.io", "index.docker.io" and
 * "registry-1.docker.io" all mean Docker Hub, whose directory is
 * "docker.io") from certs.d-style directory @config_dir, as containerd
 * finds them:
 *  - the first directory that exists of DIR/HOST_PORT_ (for a
 *    "HOST:PORT"), DIR/HOST:PORT (or DIR/HOST), DIR/_default;
 *  - its hosts.toml (lp_hosts_parse()); when it is missing or empty, the
 *    directory's Docker-style certificates instead: *.crt are CAs, *.cert
 *    client certificates with the *.key of the same name if there is one;
 *  - no directory, no `server`: the registry itself is the last entry
 *    (Docker Hub: https://registry-1.docker.io), path "/v2", every
 *    capability, the top level's ca/client/skip_verify/header. Its scheme
 *    is http for the hosts @opts speaks plain HTTP to (insecure_hosts,
 *    loopback with loopback_plain_http; @opts NULL: the defaults of
 *    lp_reg_opts_init()), https otherwise.
 * Only hosts whose capabilities include all of @need are kept (0: all).
 * Returns 0 and the list in *ret_hosts (free with lp_hosts_free()),
 * -EINVAL for an empty @config_dir or a malformed @registry (empty, "/",
 * "..", over LP_REG_HOST_MAX), -ENOENT when no host has @need, the errors of
 * lp_hosts_parse(), or the -errno of reading the directory; @err (may be
 * NULL) names the file.
 */
int lp_hosts_resolve(const char *config_dir, const char *registry,
		     const struct lp_reg_opts *opts, unsigned int need,
		     struct lp_hosts **ret_hosts, struct lp_err *err);

/* lp_hosts_count() - the number of hosts in @hosts. */
size_t lp_hosts_count(const struct lp_hosts *hosts);

/* lp_hosts_get() - host @i (< lp_hosts_count()), borrowed from @hosts. */
const struct lp_host *lp_hosts_get(const struct lp_hosts *hosts, size_t i);

/* lp_hosts_free() - free the list and its strings; NULL allowed. */
void lp_hosts_free(struct lp_hosts *hosts);

#endif /* LP_HOSTS_H */
