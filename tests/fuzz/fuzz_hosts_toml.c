// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: the hosts.toml parser (lp_hosts_parse). Whatever it accepts
 * must be a well-formed host list: the top level last, every other host
 * with an http(s) scheme, a host and a path that is empty or absolute;
 * every file path absolute (the directory given is); header names and
 * values that cannot smuggle another header into a request. A rejected
 * input must say why.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *p)
{
	if (!p || p[0] != '/' || strlen(p) >= LP_HOSTS_PATH_MAX)
		abort();
}

static void check_host(const struct lp_host *h, bool last)
{
	size_t i, j;

	if (!h->host) {
		if (!last || h->scheme || h->path)
			abort();
	} else {
		if (strcmp(h->scheme, "http") && strcmp(h->scheme, "https"))
			abort();
		if (!h->host[0] || strlen(h->host) >= LP_REG_HOST_MAX ||
		    strpbrk(h->host, "/?#@ "))
			abort();
		if (h->path[0] && h->path[0] != '/')
			abort();
	}
	if (!h->caps || (h->caps & ~(unsigned int)LP_HOST_CAP_ALL))
		abort();
	for (i = 0; i < h->n_ca; i++)
		check_path(h->ca[i]);
	for (i = 0; i < h->n_clients; i++) {
		check_path(h->clients[i].cert);
		if (h->clients[i].key)
			check_path(h->clients[i].key);
	}
	if (h->n_headers > LP_HOSTS_HEADERS_MAX)
		abort();
	for (i = 0; i < h->n_headers; i++) {
		if (!h->headers[i].name[0] ||
		    strpbrk(h->headers[i].name, ": \t\r\n"))
			abort();
		for (j = 0; j < h->headers[i].n_values; j++)
			if (strpbrk(h->headers[i].values[j], "\r\n"))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_hosts *hosts = NULL;
	struct lp_err err;
	size_t i, n;
	int r;

	lp_err_clear(&err);
	r = lp_hosts_parse((const char *)data, size,
			   "/etc/containerd/certs.d/x", "hosts.toml", &hosts,
			   &err);
	if (r < 0) {
		if (!err.msg[0] || err.code != r || hosts)
			abort();
		if (r != -EINVAL && r != -EFBIG && r != -EOPNOTSUPP &&
		    r != -ENAMETOOLONG && r != -ENOMEM)
			abort();
		return 0;
	}
	n = lp_hosts_count(hosts);
	if (!n || n > LP_HOSTS_MAX)
		abort();
	for (i = 0; i < n; i++)
		check_host(lp_hosts_get(hosts, i), i == n - 1);
	lp_hosts_free(hosts);
	return 0;
}
