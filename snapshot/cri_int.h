/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Module-private to snapshot/: the Kubernetes credentials path. kubelet's
 * --image-service-endpoint points at the CRI image-service proxy
 * (cri_proxy.c), which forwards every runtime.v1.ImageService call to
 * containerd's CRI socket as raw bytes and decodes one message only,
 * PullImageRequest (cri_msg.c), to keep its AuthConfig in memory
 * (cri_creds.c) for the layers of that image; layers.c asks the store when
 * it resolves a layer. Nothing is written to disk: a restarted snapshotter
 * knows no credentials until kubelet pulls again.
 *
 * Lock order: lp_cri_creds.lock is a leaf (taken under the layer pool's
 * lock never: layers.c asks without holding it).
 */
#ifndef LP_CRI_INT_H
#define LP_CRI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_err.h"

struct lp_reg_auth;
struct lp_reg_ref;

/* bounds on what kubelet sends in a PullImageRequest */
#define LP_CRI_MSG_MAX (4 * 1024 * 1024) /* one PullImageRequest decoded */
/* one message forwarded either way: kubelet's own bound on CRI messages
 * (16 MiB, pkg/kubelet/cri/remote), so that a ListImages reply of a big
 * node passes the proxy whenever it would pass without it */
#define LP_CRI_FORWARD_MAX (16 * 1024 * 1024)
#define LP_CRI_IMAGE_MAX 4096 /* ImageSpec.image */
#define LP_CRI_CRED_MAX 1024 /* username, password, server_address */
#define LP_CRI_TOKEN_MAX 8192 /* auth, identity_token, registry_token */
#define LP_CRI_FIELDS_MAX 4096 /* fields in one message */

/* runtime.v1 field numbers (kubernetes/cri-api pkg/apis/runtime/v1) */
enum {
	LP_CRI_PULL_IMAGE = 1, /* PullImageRequest.image: ImageSpec */
	LP_CRI_PULL_AUTH = 2, /* PullImageRequest.auth: AuthConfig */
	LP_CRI_SPEC_IMAGE = 1, /* ImageSpec.image: string */
	LP_CRI_AUTH_USERNAME = 1,
	LP_CRI_AUTH_PASSWORD = 2,
	LP_CRI_AUTH_AUTH = 3, /* base64 "user:password" */
	LP_CRI_AUTH_SERVER = 4, /* server_address */
	LP_CRI_AUTH_IDENTITY_TOKEN = 5,
	LP_CRI_AUTH_REGISTRY_TOKEN = 6,
};

/* what the proxy keeps of one PullImageRequest (NUL-terminated strings) */
struct lp_cri_pull {
	char image[LP_CRI_IMAGE_MAX];
	bool has_auth; /* an AuthConfig field was present */
	char username[LP_CRI_CRED_MAX];
	char password[LP_CRI_CRED_MAX];
	char auth[LP_CRI_TOKEN_MAX];
	char server_address[LP_CRI_CRED_MAX];
	char identity_token[LP_CRI_TOKEN_MAX];
	char registry_token[LP_CRI_TOKEN_MAX];
};

/*
 * lp_cri_pull_decode() - decode @len bytes (at most LP_CRI_MSG_MAX) of a
 * protobuf PullImageRequest: ImageSpec.image and the AuthConfig strings;
 * every other field (sandbox_config, annotations, unknown ones) is skipped
 * after its bounds are checked. A string over its bound, a string with a
 * NUL, a truncated or malformed field, a group wire type or more than
 * LP_CRI_FIELDS_MAX fields is refused. Returns 0 (@ret filled; wiped on failure), -EPROTO, -EFBIG.
 */
int lp_cri_pull_decode(const uint8_t *buf, size_t len, struct lp_cri_pull *ret);

/* lp_cri_pull_wipe() - zero @p's secrets (and the rest). */
void lp_cri_pull_wipe(struct lp_cri_pull *p);

/* ---- the credential store (cri_creds.c) ---- */

#define LP_CRI_CREDS_MAX 1024 /* images remembered; the oldest goes */

struct lp_cri_creds;

/* lp_cri_creds_new() - an empty store. 0 or -ENOMEM. */
int lp_cri_creds_new(struct lp_cri_creds **ret);

/* lp_cri_creds_free() - wipe and free every entry; NULL allowed. */
void lp_cri_creds_free(struct lp_cri_creds *s);

/*
 * lp_cri_creds_put() - remember the credentials of PullImage @p for its
 * image's repository (host/repo), replacing what an
 * earlier pull left there; a pull without credentials forgets the
 * repository's. Kept: username/password, else "auth" (base64
 * "user:password"), else identity_token (with an empty user, see
 * lp_reg_set_credentials()). Returns 1 kept, 0 forgotten (none given),
 * -EINVAL (not an image reference, or an "auth" that is not base64
 * "user:password"), -EFBIG (an identity token over LP_CRI_CRED_MAX - 1
 * bytes), -EOPNOTSUPP (only a registry_token), -ENOMEM. Thread-safe.
 */
int lp_cri_creds_put(struct lp_cri_creds *s, const struct lp_cri_pull *p);

/*
 * lp_cri_creds_get() - the credentials kept for @ref's repository
 * (host/repo exactly: another repository of the registry gets none), as a
 * new reference to their handle for lp_reg_ref.auth (the caller unrefs
 * it). Returns 1 (*@ret set), 0 none kept (*@ret NULL). Thread-safe.
 */
int lp_cri_creds_get(struct lp_cri_creds *s, const struct lp_reg_ref *ref,
		     struct lp_reg_auth **ret);

/*
 * lp_snap_layers_set_cri_creds() - from now on resolve each layer with the
 * credentials @s keeps for its image (borrowed, outlives the pool). Call
 * before the pool is shared. (layers.c)
 */
struct lp_snap_layers;
void lp_snap_layers_set_cri_creds(struct lp_snap_layers *l,
				  struct lp_cri_creds *s);

/* lp_cri_creds_count() - entries kept (metrics, tests). */
unsigned int lp_cri_creds_count(struct lp_cri_creds *s);

/* ---- the proxy (cri_proxy.c) ---- */

#define LP_CRI_DEFAULT_UPSTREAM "/run/containerd/containerd.sock"

struct lp_cri_proxy;

/*
 * lp_cri_proxy_start() - serve runtime.v1.ImageService on unix socket
 * @listen (mode 0600), forwarding every call to @upstream (containerd's
 * CRI socket) and keeping PullImage credentials in @creds (borrowed; must
 * outlive the proxy). @threads: its first workers (0: default; more while
 * all are busy). Returns 0 or -errno (@err says why).
 */
int lp_cri_proxy_start(const char *listen, const char *upstream,
		       unsigned int threads, struct lp_cri_creds *creds,
		       struct lp_cri_proxy **ret, struct lp_err *err);

/* lp_cri_proxy_stop() - cancel calls, stop serving, free; NULL allowed. */
void lp_cri_proxy_stop(struct lp_cri_proxy *p);

#endif /* LP_CRI_INT_H */
