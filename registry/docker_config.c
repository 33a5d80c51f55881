// SPDX-License-Identifier: Apache-2.0
/*
 * Credentials the way docker finds them: config.json in $DOCKER_CONFIG (or
 * ~/.docker), whose "auths" map holds base64 "user:secret" per registry,
 * and whose "credHelpers" / "credsStore" name a docker-credential-NAME
 * program that answers "get" with the server on stdin and JSON on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lp_base64.h"
#include "lp_buf.h"
#include "lp_common.h"
#include "lp_json.h"
#include "reg_int.h"

extern char **environ;

/* the "host[:port]" of a config key: scheme and path dropped */
static void key_host(const char *key, char *out, size_t size)
{
	const char *p = strstr(key, "://");
	size_t n;

	p = p ? p + 3 : key;
	n = strcspn(p, "/");
	if (n >= size)
		n = size - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static bool is_hub(const char *h)
{
	return !strcmp(h, LP_REG_DOCKER_HUB) || !strcmp(h, "docker.io") ||
	       !strcmp(h, "index.docker.io");
}

static bool host_match(const char *key, const char *host)
{
	char h[LP_REG_HOST_MAX];

	key_host(key, h, sizeof(h));
	return !strcmp(h, host) || (is_hub(h) && is_hub(host));
}

/* decode base64 "auth" (padding optional) into the string @out */
static int auth_decode(const char *s, char *out, size_t size)
{
	size_t n;
	int r;

	r = lp_base64_decode(s, strlen(s), LP_BASE64_LENIENT, out, size - 1,
			     &n);
	if (r < 0)
		return r == -EFBIG ? r : -EPROTO;
	out[n] = '\0';
	return (int)n;
}

static int copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -EFBIG;
	memcpy(dst, src, n + 1);
	return 0;
}

int lp_reg_docker_config_lookup(const char *json, size_t len, const char *host,
				struct lp_reg_cred *ret_cred)
{
	struct lp_reg_cred cred;
	json_object *root = NULL, *auths, *helpers;
	char dec[2 * LP_REG_CRED_MAX];
	const char *s;
	int r = -EPROTO;

	memset(&cred, 0, sizeof(cred));
	if (len > LP_REG_CONFIG_MAX) {
		r = -EFBIG;
		goto out;
	}
	r = lp_json_parse(json, len, REG_CONFIG_JSON_DEPTH, json_type_object,
			  &root);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EPROTO;
		goto out;
	}
	r = -EPROTO;
	/* credHelpers[host] wins over auths, as in docker */
	if (json_object_object_get_ex(root, "credHelpers", &helpers) &&
	    json_object_is_type(helpers, json_type_object)) {
		json_object_object_foreach(helpers, key, val)
		{
			if (!host_match(key, host) ||
			    !json_object_is_type(val, json_type_string))
				continue;
			r = copy_str(cred.helper, sizeof(cred.helper),
				     json_object_get_string(val));
			if (r < 0)
				goto out;
			r = 1;
			goto found;
		}
	}
	if (json_object_object_get_ex(root, "auths", &auths) &&
	    json_object_is_type(auths, json_type_object)) {
		json_object_object_foreach(auths, key, val)
		{
			char *colon;
			const char *u, *p;

			if (!host_match(key, host) ||
			    !json_object_is_type(val, json_type_object))
				continue;
			s = lp_json_str(val, "auth");
			if (s && *s) {
				r = auth_decode(s, dec, sizeof(dec));
				if (r < 0)
					goto out;
				colon = strchr(dec, ':');
				if (!colon || (size_t)r != strlen(dec)) {
					r = -EPROTO;
					goto out;
				}
				*colon = '\0';
				if ((r = copy_str(cred.user, sizeof(cred.user),
						  dec)) < 0 ||
				    (r = copy_str(cred.secret,
						  sizeof(cred.secret),
						  colon + 1)) < 0)
					goto out;
				r = 1;
				goto found;
			}
			u = lp_json_str(val, "username");
			p = lp_json_str(val, "password");
			if (u && p) {
				if ((r = copy_str(cred.user, sizeof(cred.user),
						  u)) < 0 ||
				    (r = copy_str(cred.secret,
						  sizeof(cred.secret), p)) < 0)
					goto out;
				r = 1;
				goto found;
			}
		}
	}
	s = lp_json_str(root, "credsStore");
	if (s && *s) {
		r = copy_str(cred.helper, sizeof(cred.helper), s);
		if (r < 0)
			goto out;
		r = 1;
		goto found;
	}
	r = 0;
	goto out;
found:
	/* a helper name is a file name suffix: no paths */
	if (cred.helper[0] && strchr(cred.helper, '/')) {
		r = -EPROTO;
		goto out;
	}
	*ret_cred = cred;
out:
	explicit_bzero(dec, sizeof(dec));
	json_object_put(root);
	return r;
}

int lp_reg_helper_parse(const char *json, size_t len, struct lp_reg_cred *cred)
{
	json_object *root = NULL;
	const char *u, *s;
	int r = -EPROTO;

	if (len > LP_REG_HELPER_OUT_MAX) {
		r = -EFBIG;
		goto out;
	}
	r = lp_json_parse(json, len, REG_CONFIG_JSON_DEPTH, json_type_object,
			  &root);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EPROTO;
		goto out;
	}
	r = -EPROTO;
	u = lp_json_str(root, "Username");
	s = lp_json_str(root, "Secret");
	if (!u || !s)
		goto out;
	if (!strcmp(u, "<token>")) { /* identity token: OAuth refresh */
		r = 0;
		goto out;
	}
	if ((r = copy_str(cred->user, sizeof(cred->user), u)) < 0 ||
	    (r = copy_str(cred->secret, sizeof(cred->secret), s)) < 0)
		goto out;
	r = 1;
out:
	json_object_put(root);
	return r;
}

/* run docker-credential-NAME get; its stdout into @out (bounded) */
static int run_helper(const char *name, const char *server, struct lp_buf *out)
{
	posix_spawn_file_actions_t fa;
	char prog[96];
	char *argv[3];
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
	pid_t pid = -1;
	long deadline = (long)lp_mono_ms() + LP_REG_HELPER_TIMEOUT_MS;
	bool fa_init = false;
	int r, status;

	snprintf(prog, sizeof(prog), "docker-credential-%s", name);
	argv[0] = prog;
	argv[1] = "get";
	argv[2] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	r = -posix_spawn_file_actions_init(&fa);
	if (r < 0)
		goto out;
	fa_init = true;
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	r = -posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
	if (r < 0) {
		pid = -1;
		goto out;
	}
	close(in[0]);
	in[0] = -1;
	close(outp[1]);
	outp[1] = -1;
	/* the server name is short: one write cannot fill the pipe */
	if (write(in[1], server, strlen(server)) < 0) {
		r = -errno;
		goto out;
	}
	close(in[1]);
	in[1] = -1;
	for (;;) {
		struct pollfd pfd = { .fd = outp[0], .events = POLLIN };
		char buf[4096];
		long left = deadline - (long)lp_mono_ms();
		ssize_t n;

		if (left <= 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -ETIMEDOUT;
			goto out;
		}
		n = read(outp[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (!n)
			break;
		r = lp_buf_append(out, buf, (size_t)n);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (pid > 0) {
		if (r < 0)
			kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!r && (!WIFEXITED(status) || WEXITSTATUS(status)))
			r = -ENOENT; /* helpers exit 1 for "not found" */
	}
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (in[0] >= 0)
		close(in[0]);
	if (in[1] >= 0)
		close(in[1]);
	if (outp[0] >= 0)
		close(outp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	return r;
}

int lp_reg_cred_load(const char *config_dir, const char *host,
		     struct lp_reg_cred *ret_cred)
{
	struct lp_buf data;
	char path[4096];
	const char *dir = config_dir;
	int fd = -1, r;

	lp_buf_init(&data, LP_REG_CONFIG_MAX);
	if (!dir)
		dir = getenv("DOCKER_CONFIG");
	if (dir)
		r = snprintf(path, sizeof(path), "%s/config.json", dir);
	else if (getenv("HOME"))
		r = snprintf(path, sizeof(path), "%s/.docker/config.json",
			     getenv("HOME"));
	else {
		r = 0;
		goto out;
	}
	if (r < 0 || (size_t)r >= sizeof(path)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	for (;;) {
		char buf[8192];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (!n)
			break;
		r = lp_buf_append(&data, buf, (size_t)n);
		if (r < 0)
			goto out;
	}
	r = lp_reg_docker_config_lookup((const char *)data.data, data.len, host,
					ret_cred);
	if (r <= 0 || !ret_cred->helper[0])
		goto out;
	explicit_bzero(data.data, data.len);
	lp_buf_reset(&data);
	r = run_helper(ret_cred->helper,
		       is_hub(host) ? "https://index.docker.io/v1/" : host,
		       &data);
	if (r == -ENOENT) {
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	r = lp_reg_helper_parse((const char *)data.data, data.len, ret_cred);
out:
	if (fd >= 0)
		close(fd);
	if (data.data)
		explicit_bzero(data.data, data.len);
	lp_buf_release(&data);
	return r;
}
