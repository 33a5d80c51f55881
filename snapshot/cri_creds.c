// SPDX-License-Identifier: Apache-2.0
/*
 * The credentials kubelet gave with each CRI PullImage (imagePullSecrets),
 * kept in memory only, for the layers of that image: keyed by the image's
 * repository (host/repo) and used for that repository only, never lent to
 * another repository of the same registry (kubelet chose them for this
 * image; another image may have other pull secrets or none). Each entry is
 * one refcounted credential handle (lp_reg_auth) that the layer's requests
 * carry themselves: nothing is set on the registry client all layers
 * share, and bearer tokens fetched with it are cached for it alone. A later pull of the
 * repository replaces them (a pull without credentials forgets them), the
 * oldest entry makes room past LP_CRI_CREDS_MAX, and every secret is wiped
 * before its memory is freed. Nothing here touches the disk.
 *
 * Lock order: lock is a leaf.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri_int.h"
#include "lp_base64.h"
#include "lp_log.h"
#include "lp_registry.h"

struct cred_entry {
	char host[LP_REG_HOST_MAX];
	char repo[LP_REG_REPO_MAX];
	char user[LP_CRI_CRED_MAX];
	char secret[LP_CRI_CRED_MAX];
	struct lp_reg_auth *auth; /* made from user/secret when kept */
	uint64_t stamp; /* put order: the highest is the newest */
	struct cred_entry *next;
};

struct lp_cri_creds {
	pthread_mutex_t lock;
	struct cred_entry *entries; /* protected by lock */
	unsigned int n; /* protected by lock */
	uint64_t stamp; /* protected by lock */
};

int lp_cri_creds_new(struct lp_cri_creds **ret)
{
	struct lp_cri_creds *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	*ret = s;
	return 0;
}

static void entry_free(struct cred_entry *e)
{
	lp_reg_auth_unref(e->auth); /* requests under way keep theirs */
	explicit_bzero(e, sizeof(*e));
	free(e);
}

void lp_cri_creds_free(struct lp_cri_creds *s)
{
	struct cred_entry *e, *n;

	if (!s)
		return;
	for (e = s->entries; e; e = n) {
		n = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* user and secret of @p into @e: username/password, else "auth" */
static int cred_of(const struct lp_cri_pull *p, struct cred_entry *e)
{
	char plain[LP_CRI_TOKEN_MAX];
	size_t n = 0;
	char *colon;
	int r;

	if (p->username[0] || p->password[0]) {
		snprintf(e->user, sizeof(e->user), "%s", p->username);
		snprintf(e->secret, sizeof(e->secret), "%s", p->password);
		return 1;
	}
	if (p->auth[0]) {
		r = lp_base64_decode(p->auth, strlen(p->auth),
				     LP_BASE64_LENIENT, plain,
				     sizeof(plain) - 1, &n);
		plain[r == 0 ? n : 0] = '\0';
		colon = r == 0 ? memchr(plain, ':', n) : NULL;
		r = -EINVAL;
		if (colon && !memchr(plain, '\0', n) &&
		    (size_t)(colon - plain) < sizeof(e->user) &&
		    strlen(colon + 1) < sizeof(e->secret)) {
			*colon = '\0';
			memcpy(e->user, plain, strlen(plain) + 1);
			memcpy(e->secret, colon + 1, strlen(colon + 1) + 1);
			r = 1;
		}
		explicit_bzero(plain, sizeof(plain));
		return r;
	}
	/* an identity token is an OAuth2 refresh token: kept with an empty
	 * user, the registry client trades it at the token server */
	if (p->identity_token[0]) {
		if (strlen(p->identity_token) >= sizeof(e->secret))
			return -EFBIG;
		memcpy(e->secret, p->identity_token,
		       strlen(p->identity_token) + 1);
		return 1;
	}
	/* a registry token is a bearer token for one registry: containerd
	 * 1.6 does not use it either */
	if (p->registry_token[0])
		return -EOPNOTSUPP;
	return 0;
}

int lp_cri_creds_put(struct lp_cri_creds *s, const struct lp_cri_pull *p)
{
	struct lp_reg_ref ref;
	struct cred_entry *e = NULL, **pp, **oldest;
	int r;

	if (lp_reg_ref_parse(p->image, &ref) < 0)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = cred_of(p, e);
	if (r < 0)
		goto out;
	memcpy(e->host, ref.host, sizeof(e->host));
	memcpy(e->repo, ref.repo, sizeof(e->repo));
	if (r > 0) {
		int rc = lp_reg_auth_new(e->host, e->user, e->secret, &e->auth);

		if (rc < 0) {
			r = rc;
			goto out;
		}
	}
	pthread_mutex_lock(&s->lock);
	for (pp = &s->entries; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->host, e->host) &&
		    !strcmp((*pp)->repo, e->repo))
			break;
	if (*pp) {
		struct cred_entry *old = *pp;

		*pp = old->next;
		entry_free(old);
		s->n--;
	}
	if (r > 0) {
		if (s->n >= LP_CRI_CREDS_MAX) {
			oldest = &s->entries;
			for (pp = &s->entries; *pp; pp = &(*pp)->next)
				if ((*pp)->stamp < (*oldest)->stamp)
					oldest = pp;
			{
				struct cred_entry *old = *oldest;

				*oldest = old->next;
				entry_free(old);
				s->n--;
			}
		}
		e->stamp = ++s->stamp;
		e->next = s->entries;
		s->entries = e;
		s->n++;
		e = NULL;
	}
	pthread_mutex_unlock(&s->lock);
out:
	if (e)
		entry_free(e);
	return r;
}

int lp_cri_creds_get(struct lp_cri_creds *s, const struct lp_reg_ref *ref,
		     struct lp_reg_auth **ret)
{
	struct cred_entry *e;

	*ret = NULL;
	pthread_mutex_lock(&s->lock);
	for (e = s->entries; e; e = e->next)
		if (!strcmp(e->host, ref->host) &&
		    !strcmp(e->repo, ref->repo)) {
			*ret = lp_reg_auth_ref(e->auth);
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return *ret ? 1 : 0;
}

unsigned int lp_cri_creds_count(struct lp_cri_creds *s)
{
	unsigned int n;

	pthread_mutex_lock(&s->lock);
	n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}
