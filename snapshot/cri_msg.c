// SPDX-License-Identifier: Apache-2.0
/*
 * The one CRI message the proxy reads: runtime.v1 PullImageRequest, decoded
 * from protobuf wire format by hand with the upstream field numbers
 * (kubernetes/cri-api pkg/apis/runtime/v1/api.proto; the .proto files are
 * not packaged for Debian 12). Only ImageSpec.image and AuthConfig's
 * strings are kept; every other field is stepped over by its length
 * (embedded messages such as sandbox_config are never entered: the
 * decoder goes two levels deep, no more). Every length is checked against what is left before it is
 * used, so the decoder never reads past @len whatever the bytes say.
 */
#include <errno.h>
#include <string.h>

#include "cri_int.h"

/* protobuf wire types */
enum {
	WT_VARINT = 0,
	WT_I64 = 1,
	WT_LEN = 2,
	WT_SGROUP = 3,
	WT_EGROUP = 4,
	WT_I32 = 5,
};

struct rd {
	const uint8_t *p, *end;
	unsigned int fields; /* seen so far, all levels */
};

/* a varint of at most 10 bytes; -EPROTO truncated or too long */
static int varint(struct rd *r, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned int shift;

	for (shift = 0; shift < 70; shift += 7) {
		uint8_t b;

		if (r->p >= r->end)
			return -EPROTO;
		b = *r->p++;
		if (shift == 63 && b > 1)
			return -EPROTO; /* past 64 bits */
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EPROTO;
}

/* the next field's number, wire type and, for WT_LEN, its bytes */
static int field(struct rd *r, uint32_t *ret_num, unsigned int *ret_wt,
		 const uint8_t **ret_data, size_t *ret_len)
{
	uint64_t key, v;
	int rc;

	if (++r->fields > LP_CRI_FIELDS_MAX)
		return -EFBIG;
	rc = varint(r, &key);
	if (rc < 0)
		return rc;
	if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -EPROTO;
	*ret_num = (uint32_t)(key >> 3);
	*ret_wt = (unsigned int)(key & 7);
	*ret_data = NULL;
	*ret_len = 0;
	switch (*ret_wt) {
	case WT_VARINT:
		return varint(r, &v);
	case WT_I64:
		if ((size_t)(r->end - r->p) < 8)
			return -EPROTO;
		r->p += 8;
		return 0;
	case WT_I32:
		if ((size_t)(r->end - r->p) < 4)
			return -EPROTO;
		r->p += 4;
		return 0;
	case WT_LEN:
		rc = varint(r, &v);
		if (rc < 0)
			return rc;
		if (v > (uint64_t)(r->end - r->p))
			return -EPROTO;
		*ret_data = r->p;
		*ret_len = (size_t)v;
		r->p += v;
		return 0;
	default:
		/* groups are long deprecated and not in the CRI API */
		return -EPROTO;
	}
}

/* a string field into @out (@size with its NUL) */
static int string(unsigned int wt, const uint8_t *data, size_t len, char *out,
		  size_t size)
{
	if (wt != WT_LEN)
		return -EPROTO;
	if (len >= size)
		return -EFBIG;
	if (memchr(data, '\0', len))
		return -EPROTO;
	memcpy(out, data, len);
	out[len] = '\0';
	return 0;
}

static int image_spec(struct rd *top, const uint8_t *data, size_t len,
		      struct lp_cri_pull *p)
{
	struct rd r = { data, data + len, top->fields };
	const uint8_t *d;
	unsigned int wt;
	uint32_t num;
	size_t n;
	int rc = 0;

	while (r.p < r.end && rc == 0) {
		rc = field(&r, &num, &wt, &d, &n);
		if (rc == 0 && num == LP_CRI_SPEC_IMAGE)
			rc = string(wt, d, n, p->image, sizeof(p->image));
	}
	top->fields = r.fields;
	return rc;
}

static int auth_config(struct rd *top, const uint8_t *data, size_t len,
		       struct lp_cri_pull *p)
{
	struct rd r = { data, data + len, top->fields };
	const uint8_t *d;
	unsigned int wt;
	uint32_t num;
	size_t n;
	int rc = 0;

	p->has_auth = true;
	while (r.p < r.end && rc == 0) {
		rc = field(&r, &num, &wt, &d, &n);
		if (rc < 0)
			break;
		switch (num) {
		case LP_CRI_AUTH_USERNAME:
			rc = string(wt, d, n, p->username, sizeof(p->username));
			break;
		case LP_CRI_AUTH_PASSWORD:
			rc = string(wt, d, n, p->password, sizeof(p->password));
			break;
		case LP_CRI_AUTH_AUTH:
			rc = string(wt, d, n, p->auth, sizeof(p->auth));
			break;
		case LP_CRI_AUTH_SERVER:
			rc = string(wt, d, n, p->server_address,
				    sizeof(p->server_address));
			break;
		case LP_CRI_AUTH_IDENTITY_TOKEN:
			rc = string(wt, d, n, p->identity_token,
				    sizeof(p->identity_token));
			break;
		case LP_CRI_AUTH_REGISTRY_TOKEN:
			rc = string(wt, d, n, p->registry_token,
				    sizeof(p->registry_token));
			break;
		default:
			break; /* a newer field: ignored */
		}
	}
	top->fields = r.fields;
	return rc;
}

void lp_cri_pull_wipe(struct lp_cri_pull *p)
{
	explicit_bzero(p, sizeof(*p));
}

int lp_cri_pull_decode(const uint8_t *buf, size_t len, struct lp_cri_pull *ret)
{
	struct rd r = { buf, buf + len, 0 };
	const uint8_t *d;
	unsigned int wt;
	uint32_t num;
	size_t n;
	int rc = 0;

	memset(ret, 0, sizeof(*ret));
	if (len > LP_CRI_MSG_MAX)
		return -EFBIG;
	while (r.p < r.end && rc == 0) {
		rc = field(&r, &num, &wt, &d, &n);
		if (rc < 0)
			break;
		if (num == LP_CRI_PULL_IMAGE || num == LP_CRI_PULL_AUTH) {
			if (wt != WT_LEN) {
				rc = -EPROTO;
				break;
			}
			/* proto3: a repeated embedded message merges */
			rc = num == LP_CRI_PULL_IMAGE ?
				     image_spec(&r, d, n, ret) :
				     auth_config(&r, d, n, ret);
		}
	}
	if (rc < 0)
		lp_cri_pull_wipe(ret);
	return rc;
}
