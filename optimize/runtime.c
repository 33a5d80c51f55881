// SPDX-License-Identifier: Apache-2.0
/*
 * Running the workload under runc: `runc create` (so that a container that
 * cannot start - a missing binary, a bad working directory - fails here,
 * with runc's reason, before anything ran), `runc start`, then one poll
 * loop over the container's stdout/stderr pipes and the stop signals' fd,
 * with the period as its deadline. Output is passed through and split into
 * lines for --wait-line. The container's init is our child once `runc
 * create` exits (the caller made us a child subreaper), so its exit status
 * is ours to collect. Whatever happens, the container is killed and
 * deleted before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_log.h"
#include "optimize_int.h"

#define RUN_POLL_MS 100 /* also how often the init is checked on */
#define RUN_DRAIN_MS 1000 /* output still read after the init exited */
#define RUN_READ_BLOCK 65536
#define RUN_REASON_MAX 400 /* runc's last error line kept */
#define RUN_PIDFILE "init.pid"

extern char **environ;

/* one output stream of the container */
struct stream {
	int fd; /* -1 at EOF */
	FILE *to; /* NULL: dropped */
	char line[LP_OPT_LINE_MAX + 1]; /* the line being gathered */
	size_t len;
};

struct watch {
	const struct opt_run *run;
	struct stream s[2]; /* stdout, stderr */
	char reason[RUN_REASON_MAX]; /* runc's last stderr line */
	bool matched;
	bool workload_started; /* match --wait-line only from then on */
};

/*
 * keep runc's reason from an error line: the msg="..." of its logrus
 * format (quotes unescaped), else the whole line
 */
static void keep_reason(struct watch *w, const char *line)
{
	const char *m = strstr(line, "msg=\"");
	size_t n = 0;

	if (!m) {
		snprintf(w->reason, sizeof(w->reason), "%.*s",
			 (int)sizeof(w->reason) - 1, line);
		return;
	}
	for (m += 5; *m && *m != '"' && n < sizeof(w->reason) - 1; m++) {
		if (*m == '\\' && m[1])
			m++;
		w->reason[n++] = *m;
	}
	w->reason[n] = 0;
}

/* a complete line of stream @i (no newline), or an overlong part of one */
static void on_line(struct watch *w, int i, const char *line, size_t len)
{
	char tmp[LP_OPT_LINE_MAX + 1];

	memcpy(tmp, line, len);
	tmp[len] = 0;
	/* before start the only writer is runc */
	if (i == 1 && !w->workload_started && len)
		keep_reason(w, tmp);
	if (w->workload_started && w->run->wait_line && !w->matched &&
	    regexec(w->run->wait_line, tmp, 0, NULL, 0) == 0)
		w->matched = true;
}

/* read what stream @i has: pass it on, split it into lines */
static void read_stream(struct watch *w, int i)
{
	struct stream *s = &w->s[i];
	char buf[RUN_READ_BLOCK];
	ssize_t n;
	size_t k;

	n = read(s->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (s->len)
			on_line(w, i, s->line, s->len);
		s->len = 0;
		close(s->fd);
		s->fd = -1;
		return;
	}
	if (s->to) {
		fwrite(buf, 1, (size_t)n, s->to);
		fflush(s->to);
	}
	for (k = 0; k < (size_t)n; k++) {
		if (buf[k] == '\n' || s->len == LP_OPT_LINE_MAX) {
			on_line(w, i, s->line, s->len);
			s->len = 0;
			if (buf[k] == '\n')
				continue;
		}
		s->line[s->len++] = buf[k];
	}
}

/* drain the stop signals; true when one arrived */
static bool got_signal(int sig_fd)
{
	struct signalfd_siginfo si;
	bool got = false;

	while (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
		lp_log_info("signal %u: stopping the workload", si.ssi_signo);
		got = true;
	}
	return got;
}

/*
 * poll the streams and the signal fd for up to @timeout_ms; returns true
 * when a stop signal arrived
 */
static bool poll_once(struct watch *w, int timeout_ms)
{
	struct pollfd p[3];
	int n = 0, i, map[3];

	for (i = 0; i < 2; i++) {
		if (w->s[i].fd < 0)
			continue;
		map[n] = i;
		p[n].fd = w->s[i].fd;
		p[n++].events = POLLIN;
	}
	map[n] = -1;
	p[n].fd = w->run->sig_fd;
	p[n++].events = POLLIN;
	if (poll(p, (nfds_t)n, timeout_ms) <= 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (map[i] < 0) {
			if (got_signal(w->run->sig_fd))
				return true;
		} else {
			read_stream(w, map[i]);
		}
	}
	return false;
}

/*
 * spawn @argv with stdin /dev/null, stdout/stderr on @out/@err (-1: ours),
 * default signal handling and an empty signal mask
 */
static int spawn(char *const *argv, int out, int err, pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
					 O_RDONLY, 0);
	if (out >= 0)
		posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
	if (err >= 0)
		posix_spawn_file_actions_adddup2(&fa, err, STDERR_FILENO);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawnp(ret_pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -r;
}

/* run a runc subcommand to its end; its exit status, or -errno */
static int runc_cmd(const struct opt_run *run, const char *sub, const char *a1,
		    const char *a2)
{
	char *argv[] = { (char *)run->runc,
			 "--root",
			 (char *)run->state_dir,
			 (char *)sub,
			 (char *)a1,
			 (char *)a2,
			 NULL };
	int st, r, devnull;
	pid_t pid;

	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r = spawn(argv, devnull, -1, &pid);
	if (devnull >= 0)
		close(devnull);
	if (r < 0)
		return r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* wait for @pid up to @ms while reading the streams; true when it exited */
static bool wait_child(struct watch *w, pid_t pid, int64_t ms, int *ret_st,
		       bool *ret_signal)
{
	int64_t end = (int64_t)lp_mono_ms() + ms;

	for (;;) {
		pid_t got = waitpid(pid, ret_st, WNOHANG);

		if (got == pid || (got < 0 && errno == ECHILD))
			return got == pid;
		if ((int64_t)lp_mono_ms() >= end)
			return false;
		if (poll_once(w, RUN_POLL_MS) && ret_signal)
			*ret_signal = true;
	}
}

static pid_t read_pid(const char *bundle)
{
	char path[PATH_MAX], buf[32] = { 0 };
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/" RUN_PIDFILE, bundle);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = strtol(buf, NULL, 10);
	fclose(f);
	return v > 0 && v <= INT_MAX ? (pid_t)v : -1;
}

int opt_run_workload(const struct opt_run *run, enum lp_opt_stop *ret_stop,
		     int *ret_status, struct lp_err *err)
{
	struct watch *w = NULL;
	char pidfile[PATH_MAX];
	char *create[] = { (char *)run->runc,
			   "--root",
			   (char *)run->state_dir,
			   "create",
			   "--bundle",
			   (char *)run->bundle,
			   "--pid-file",
			   pidfile,
			   (char *)run->id,
			   NULL };
	int pipes[2][2] = { { -1, -1 }, { -1, -1 } };
	enum lp_opt_stop stop = LP_OPT_STOP_EXITED;
	bool created = false, exited = false, sig = false;
	pid_t pid = -1, init = -1;
	int64_t deadline, drain_end = 0;
	int i, st = 0, r = 0;

	*ret_status = -1;
	w = calloc(1, sizeof(*w));
	if (!w)
		return lp_err_set(err, -ENOMEM, "out of memory");
	w->run = run;
	w->s[0].fd = w->s[1].fd = -1;
	w->s[0].to = run->out;
	w->s[1].to = run->errout;
	snprintf(pidfile, sizeof(pidfile), "%s/" RUN_PIDFILE, run->bundle);
	for (i = 0; i < 2; i++) {
		if (pipe2(pipes[i], O_CLOEXEC) < 0) {
			r = lp_err_set(err, -errno, "pipe: %s",
				       strerror(errno));
			goto out;
		}
		w->s[i].fd = pipes[i][0];
		pipes[i][0] = -1;
	}

	/* create: runc's errors arrive on the stderr pipe */
	r = spawn(create, pipes[0][1], pipes[1][1], &pid);
	for (i = 0; i < 2; i++) {
		close(pipes[i][1]); /* the container holds its own copies */
		pipes[i][1] = -1;
	}
	if (r < 0) {
		lp_err_set(err, r, "cannot run %s: %s", run->runc,
			   strerror(-r));
		goto out;
	}
	created = true; /* perhaps partly: delete it in any case */
	while (!wait_child(w, pid, RUN_POLL_MS, &st, &sig) && !sig)
		;
	if (sig) {
		stop = LP_OPT_STOP_SIGNAL;
		goto stop;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    (init = read_pid(run->bundle)) < 0) {
		r = lp_err_set(err, -ENOEXEC,
			       "the workload could not start: %s",
			       w->reason[0] ? w->reason : "runc create failed");
		goto stop;
	}
	w->workload_started = true;
	r = runc_cmd(run, "start", run->id, NULL);
	if (r != 0) {
		r = lp_err_set(err, -ENOEXEC,
			       "the workload could not start: runc start "
			       "failed (%d)",
			       r);
		goto stop;
	}
	lp_log_info("workload started (pid %d)", (int)init);

	deadline = (int64_t)lp_mono_ms() + run->period_ms;
	for (;;) {
		int64_t now = (int64_t)lp_mono_ms();
		pid_t got;

		if (!exited) {
			got = waitpid(init, &st, WNOHANG);
			if (got == init || (got < 0 && errno == ECHILD)) {
				exited = true;
				*ret_status =
					got == init && WIFEXITED(st) ?
						WEXITSTATUS(st) :
						(got == init ?
							 128 + WTERMSIG(st) :
							 -1);
				drain_end = now + RUN_DRAIN_MS;
			}
		}
		if (w->matched) {
			stop = LP_OPT_STOP_WAIT_LINE;
			break;
		}
		if (exited &&
		    ((w->s[0].fd < 0 && w->s[1].fd < 0) || now >= drain_end)) {
			stop = LP_OPT_STOP_EXITED;
			break;
		}
		if (now >= deadline) {
			stop = LP_OPT_STOP_PERIOD;
			break;
		}
		if (poll_once(w, deadline - now < RUN_POLL_MS ?
					 (int)(deadline - now) :
					 RUN_POLL_MS)) {
			stop = LP_OPT_STOP_SIGNAL;
			break;
		}
	}
stop:
	if (created) {
		if (init > 0 && !exited) {
			runc_cmd(run, "kill", run->id, "KILL");
			if (!wait_child(w, init, LP_OPT_STOP_GRACE_MS, &st,
					NULL))
				lp_log_warn("container %s: init %d did not "
					    "exit after SIGKILL",
					    run->id, (int)init);
		}
		if (runc_cmd(run, "delete", "--force", run->id) != 0)
			lp_log_warn("runc delete --force %s failed", run->id);
	}
	/* anything else the container left to us */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (r == 0) {
		*ret_stop = stop;
		if (stop == LP_OPT_STOP_SIGNAL)
			*ret_status = -1;
	}
out:
	for (i = 0; i < 2; i++) {
		if (pipes[i][0] >= 0)
			close(pipes[i][0]);
		if (pipes[i][1] >= 0)
			close(pipes[i][1]);
		if (w && w->s[i].fd >= 0)
			close(w->s[i].fd);
	}
	free(w);
	return r;
}
