/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd remote snapshotter: `lazypull snapshotter`. Serves
 * containerd's Snapshots gRPC API v1 on a unix socket. Layers that carry the
 * remote-snapshot labels and a TOC digest are mounted lazily (one FUSE mount
 * per layer, served in-process) and reported to containerd as already
 * present; every other layer is handled like an ordinary overlay snapshotter.
 * Metadata lives in SQLite under the root directory and survives a crash.
 *
 * How to run it:
 *	lp_snap_config_init(&c);
 *	lp_snap_config_load(&c, "/etc/lazypull/config.json", &err);
 *	... override fields from the command line ...
 *	lp_snap_run(&c, &exit_now, &err); (until SIGTERM / SIGINT)
 *	lp_snap_config_release(&c);
 */
#ifndef LP_SNAPSHOTTER_H
#define LP_SNAPSHOTTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_err.h"

#define LP_SNAP_DEFAULT_ROOT "/var/lib/lazypull"
#define LP_SNAP_DEFAULT_ADDRESS "/run/lazypull/lazypull.sock"
#define LP_SNAP_CONFIG_MAX (1024 * 1024) /* bytes of the JSON config */
#define LP_SNAP_INSECURE_MAX 64 /* --insecure-registry entries */
#define LP_SNAP_PATH_MAX 1024 /* root, socket and cache paths */
#define LP_SNAP_INDEX_DIRS_MAX 16 /* index_dirs entries */
/* index_trusted_keys entries (= LP_INDEX_SIG_MAX_KEYS, format/) */
#define LP_SNAP_TRUSTED_KEYS_MAX 16
/* an index_dirs file: DIR/<layer hex>.gzidx (`lazypull index --output`) */
#define LP_SNAP_INDEX_SUFFIX ".gzidx"
/*
 * How long readers of a layer wait while no snapshotter serves it (a
 * restart, an upgrade, a crash) before their requests fail with EIO: long
 * enough for a restart that resumes many layers on a loaded node (seconds)
 * and for a package upgrade between stop and start, short enough that a
 * daemon that does not come back shows as I/O errors within a minute
 * instead of processes hanging in D state forever.
 */
#define LP_SNAP_DEFAULT_UNSERVED_TIMEOUT_S 60
#define LP_SNAP_UNSERVED_TIMEOUT_MAX (24 * 3600)
/*
 * The daemon's memory budget for chunks (every layer together): room for
 * the chunks a few dozen readers stream at once (4 MiB each at most); the
 * disk tier and the kernel's page cache hold the rest.
 */
#define LP_SNAP_DEFAULT_MEM_CACHE (64u * 1024 * 1024)
/* the fd holder's wire protocol (snapshot/fdholder.c); bump on any change */
#define LP_SNAP_FDH_PROTO 1

struct lp_snap_config {
	char *root; /* metadata, snapshot dirs, layer mounts, chunk cache */
	char *address; /* unix socket path */
	char *metrics_address; /* "host:port" for /metrics; NULL: off */
	char *insecure[LP_SNAP_INSECURE_MAX + 1]; /* NULL-ended */
	size_t n_insecure;
	char *docker_config_dir; /* NULL: $DOCKER_CONFIG or ~/.docker */
	/* containerd's hosts.toml directory; NULL: /etc/containerd/certs.d
	 * (LP_REG_CONFIG_DIR_DEFAULT), "": none */
	char *registry_config_dir;
	/* the CRI image-service proxy (kubelet's --image-service-endpoint):
	 * its socket (NULL: off) and containerd's CRI socket it forwards to
	 * (NULL: /run/containerd/containerd.sock) */
	char *cri_listen;
	char *cri_upstream;
	/* the memory tier of every mounted layer together, one budget for the
	 * daemon; 0: LP_SNAP_DEFAULT_MEM_CACHE */
	size_t mem_cache_bytes;
	uint64_t disk_cache_bytes; /* 0: default */
	bool prefetch; /* fetch each layer's prioritised files at mount */
	unsigned int prefetch_timeout_ms; /* Prepare waits this long for it */
	bool background_fetch; /* then fetch the rest at low priority */
	/* background fetch waits this long after the last prefetch or
	 * on-demand fetch of any layer (lp_fs_options.background_quiet_ms) */
	unsigned int background_quiet_ms;
	bool strict; /* refuse layers that cannot be mounted lazily */
	/* a layer without a TOC: look for its gzip index (`lazypull index`)
	 * in @index_dirs, then among the image's referrers in the registry */
	bool index_lookup;
	/* with prefetch: look for the image's prefetch profile (`lazypull
	 * optimize --profile-only`) in @index_dirs, then among its referrers,
	 * and prefetch each layer's listed files at mount */
	bool profile_lookup;
	char *index_dirs[LP_SNAP_INDEX_DIRS_MAX + 1]; /* NULL-ended */
	size_t n_index_dirs;
	/* PEM files of the Ed25519 public keys whose signed gzip indexes are
	 * trusted (docs/format.md "Signed indexes"): reads start at any of
	 * their checkpoints. None: every index is proven-only */
	char *index_trusted_keys[LP_SNAP_TRUSTED_KEYS_MAX + 1]; /* NULL-ended */
	size_t n_index_trusted_keys;
	/* gzip index layers: reads may also start at checkpoints nobody
	 * proved, under the window rule (lp_fs_options.index_window_rule;
	 * its gap: docs/format.md) */
	bool index_window_rule;
	unsigned int fuse_threads; /* per layer mount; 0: default */
	unsigned int grpc_threads; /* first gRPC workers; 0: default */
	/* readers wait this long for a daemon while none serves, then get
	 * EIO (the fd holder answers for it) */
	unsigned int unserved_timeout_s;
};

/* lp_snap_config_init() - defaults (owned strings: root and address). */
int lp_snap_config_init(struct lp_snap_config *c);

/*
 * lp_snap_config_load() - read the JSON file @path over @c: only the fields
 * present change. Returns 0, -ENOENT, -EFBIG (over LP_SNAP_CONFIG_MAX),
 * -EINVAL (bad JSON or a field of the wrong type: @err names it), -ENOMEM.
 */
int lp_snap_config_load(struct lp_snap_config *c, const char *path,
			struct lp_err *err);

/*
 * lp_snap_config_set_str() - replace the owned string *@field by a copy of
 * @value (NULL clears it). Returns 0 or -ENOMEM.
 */
int lp_snap_config_set_str(char **field, const char *value);

/* lp_snap_config_add_insecure() - one more plain-HTTP host. 0, -E2BIG. */
int lp_snap_config_add_insecure(struct lp_snap_config *c, const char *host);

/*
 * lp_snap_config_add_index_dir() - one more index directory (an absolute
 * path). 0, -E2BIG, -EINVAL (not absolute, too long), -ENOMEM.
 */
int lp_snap_config_add_index_dir(struct lp_snap_config *c, const char *dir);

/*
 * lp_snap_config_add_trusted_key() - one more trusted index key file (an
 * absolute path). 0, -E2BIG, -EINVAL (not absolute, too long), -ENOMEM.
 */
int lp_snap_config_add_trusted_key(struct lp_snap_config *c, const char *path);

/* lp_snap_config_release() - free the owned strings. */
void lp_snap_config_release(struct lp_snap_config *c);

/*
 * lp_snap_run() - run the snapshotter until SIGTERM, SIGINT or SIGHUP:
 * find (or start) the fd holder of the root and claim it, resume the layer
 * connections it holds, clear other stale mounts under the root, remount
 * the other layers committed remote snapshots use, serve gRPC (and
 * metrics). On a signal the layers stay mounted, their connections with
 * the holder, for the next daemon; so they do when it fails to start after
 * taking them (a busy socket or metrics port: the next start resumes
 * them). In both cases *@ret_exit_now is set: FUSE and fetch threads still
 * run, and the caller must end the process with _exit() at once. Without
 * a holder it unmounts everything when it stops. Call from the main thread
 * before any other thread exists (it blocks those signals for the whole
 * process). Returns 0 on a stop, -errno when it could not start (@err
 * says why).
 */
int lp_snap_run(const struct lp_snap_config *c, bool *ret_exit_now,
		struct lp_err *err);

/*
 * lp_snap_teardown() - what uninstalling needs: with no snapshotter
 * running on @c->root, unmount every layer mount under it and stop its fd
 * holder (its connections end: readers get ENOTCONN). Returns how many
 * mounts were removed, -EBUSY (a snapshotter serves the root: @err names
 * its pid), or -errno.
 */
int lp_snap_teardown(const struct lp_snap_config *c, struct lp_err *err);

/*
 * lp_snap_fdholder_serve() - be the fd holder of @root (`lazypull
 * fdholder`): listen on ROOT/fdholder.sock and hold what daemons hand over
 * until STOP or SIGTERM/SIGINT/SIGHUP (then every held connection is
 * closed). @timeout_s: the unserved timeout until a daemon claims it;
 * @version: LP_SNAP_FDH_PROTO (another value only to test refusals);
 * @exit_when_idle: end once a daemon has claimed it and none does any
 * more while it holds nothing (a holder a daemon started; a systemd unit's
 * holder stays). Returns 0 or -errno (cannot listen).
 */
int lp_snap_fdholder_serve(const char *root, unsigned int timeout_s,
			   uint32_t version, bool exit_when_idle);

#endif /* LP_SNAPSHOTTER_H */
