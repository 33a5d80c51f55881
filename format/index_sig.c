// SPDX-License-Identifier: Apache-2.0
/*
 * Signed gzip indexes (lp_index_sig.h, docs/format.md "Signed indexes"):
 * the canonical statement that binds a set of gzip indexes to an image
 * (built and parsed here, byte for byte), Ed25519 signing and verifying
 * through OpenSSL's EVP API, the bounded parse of the three strings that
 * carry a signature (annotations or a sidecar file), and the one decision
 * whether an index is trusted. Everything parsed here comes from the
 * network: every length is checked against a named bound before it is
 * decoded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lp_base64.h"
#include "lp_index_sig.h"
#include "lp_io.h"
#include "lp_json.h"

#define ED25519_RAW 32 /* a raw Ed25519 public key */
#define SIG_JSON_DEPTH 8 /* a manifest's nesting, with room */
#define LINE_MANIFEST "manifest "
#define LINE_LAYER "layer "
#define LINE_INDEX " index "

struct lp_index_signer {
	EVP_PKEY *pkey;
	struct lp_digest id; /* sha256 of the raw public key */
};

struct trusted_key {
	EVP_PKEY *pkey;
	struct lp_digest id;
};

struct lp_index_keys {
	struct trusted_key keys[LP_INDEX_SIG_MAX_KEYS];
	size_t n;
};

struct lp_index_sig {
	uint8_t *statement; /* its exact bytes, as signed */
	size_t statement_len;
	uint8_t sig[LP_INDEX_SIG_LEN];
	struct lp_digest key; /* the signer's key id */
	struct lp_digest manifest;
	struct lp_index_sig_layer *layers;
	size_t n_layers;
};

/* ---- statements ---------------------------------------------------- */

static bool layer_twice(const struct lp_index_sig_layer *layers, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			if (lp_digest_equal(&layers[i].layer, &layers[j].layer))
				return true;
	return false;
}

int lp_index_statement_build(const struct lp_digest *manifest,
			     const struct lp_index_sig_layer *layers, size_t n,
			     struct lp_buf *out)
{
	char a[LP_DIGEST_STR_LEN + 1], b[LP_DIGEST_STR_LEN + 1];
	size_t i;
	int r;

	if (n == 0 || n > LP_INDEX_SIG_MAX_LAYERS || layer_twice(layers, n))
		return -EINVAL;
	lp_digest_format(manifest, a);
	r = lp_buf_printf(out, "%s" LINE_MANIFEST "%s\n", LP_INDEX_SIG_MAGIC,
			  a);
	for (i = 0; i < n && r == 0; i++) {
		lp_digest_format(&layers[i].layer, a);
		lp_digest_format(&layers[i].index, b);
		r = lp_buf_printf(out, LINE_LAYER "%s" LINE_INDEX "%s\n", a, b);
	}
	return r;
}

/* "PREFIX sha256:<hex>" at *@p (before @end) into @d, *@p moved past it */
static int take_digest(const char **p, const char *end, const char *prefix,
		       struct lp_digest *d)
{
	size_t k = strlen(prefix);

	if ((size_t)(end - *p) < k + LP_DIGEST_STR_LEN ||
	    memcmp(*p, prefix, k) ||
	    lp_digest_parse_n(*p + k, LP_DIGEST_STR_LEN, d) < 0)
		return -EBADMSG;
	*p += k + LP_DIGEST_STR_LEN;
	return 0;
}

/* the statement @s->statement into @s's fields (exactly the grammar) */
static int statement_parse(struct lp_index_sig *s, struct lp_err *err)
{
	const char *p = (const char *)s->statement, *end = p + s->statement_len;
	const size_t magic = sizeof(LP_INDEX_SIG_MAGIC) - 1;
	size_t n = 0;

	if (s->statement_len < magic || memcmp(p, LP_INDEX_SIG_MAGIC, magic))
		return lp_err_set(err, -EBADMSG,
				  "index signature: the statement is not "
				  "lazypull-index-signature-v1");
	p += magic;
	if (take_digest(&p, end, LINE_MANIFEST, &s->manifest) < 0 || p == end ||
	    *p++ != '\n')
		return lp_err_set(err, -EBADMSG,
				  "index signature: no manifest line");
	s->layers = calloc(LP_INDEX_SIG_MAX_LAYERS, sizeof(*s->layers));
	if (!s->layers)
		return -ENOMEM;
	while (p < end) {
		if (n == LP_INDEX_SIG_MAX_LAYERS)
			return lp_err_set(err, -EFBIG,
					  "index signature: over %d layers "
					  "(LP_INDEX_SIG_MAX_LAYERS)",
					  LP_INDEX_SIG_MAX_LAYERS);
		if (take_digest(&p, end, LINE_LAYER, &s->layers[n].layer) < 0 ||
		    take_digest(&p, end, LINE_INDEX, &s->layers[n].index) < 0 ||
		    p == end || *p++ != '\n')
			return lp_err_set(err, -EBADMSG,
					  "index signature: layer line %zu "
					  "malformed",
					  n + 1);
		n++;
	}
	s->n_layers = n;
	if (n == 0 || layer_twice(s->layers, n))
		return lp_err_set(err, -EBADMSG, "index signature: %s",
				  n ? "a layer named twice" : "no layer line");
	return 0;
}

/* ---- keys ------------------------------------------------------------ */

/* the key id of Ed25519 key @pkey (sha256 of its raw public key) */
static int key_id(EVP_PKEY *pkey, struct lp_digest *id)
{
	uint8_t raw[ED25519_RAW];
	size_t len = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 ||
	    len != ED25519_RAW)
		return -EINVAL;
	lp_sha256(raw, len, id);
	return 0;
}

/* never a passphrase prompt on the terminal: an encrypted key is refused */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* PEM @pem (@len bytes) as an Ed25519 key, private or public */
static int read_pem(const void *pem, size_t len, bool private_key,
		    EVP_PKEY **ret, struct lp_err *err)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if (len > LP_INDEX_SIG_MAX_PEM)
		return lp_err_set(err, -EFBIG,
				  "key: over %d bytes (LP_INDEX_SIG_MAX_PEM)",
				  LP_INDEX_SIG_MAX_PEM);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	pkey = private_key ?
		       PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) :
		       PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error(); /* a refused PEM leaves its reasons queued */
	if (!pkey || EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return lp_err_set(err, -EINVAL, "not an Ed25519 %s key in PEM",
				  private_key ? "private" : "public");
	}
	*ret = pkey;
	return 0;
}

static int load_file(const char *path, void **ret, size_t *ret_len,
		     struct lp_err *err)
{
	int r = lp_file_read_bounded(path, LP_INDEX_SIG_MAX_PEM, O_NONBLOCK,
				     ret, ret_len);

	if (r < 0)
		return lp_err_set(err, r, "%s: %s", path,
				  r == -EFBIG ? "over LP_INDEX_SIG_MAX_PEM" :
						strerror(-r));
	return 0;
}

int lp_index_signer_load(const char *path, struct lp_index_signer **ret,
			 struct lp_err *err)
{
	struct lp_index_signer *s = NULL;
	struct lp_err why = { 0 };
	void *pem = NULL;
	size_t len = 0;
	int r;

	r = load_file(path, &pem, &len, err);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	r = read_pem(pem, len, true, &s->pkey, &why);
	if (r == 0)
		r = key_id(s->pkey, &s->id);
	if (r < 0) {
		lp_err_set(err, r, "%s: %s", path, lp_err_str(&why, r));
		goto out;
	}
	*ret = s;
	s = NULL;
out:
	if (pem)
		OPENSSL_cleanse(pem, len);
	free(pem);
	lp_index_signer_free(s);
	return r;
}

void lp_index_signer_free(struct lp_index_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->pkey);
	free(s);
}

void lp_index_sig_strings_clear(struct lp_index_sig_strings *s)
{
	if (!s)
		return;
	free(s->statement);
	free(s->signature);
	free(s->key);
	memset(s, 0, sizeof(*s));
}

static char *b64(const void *data, size_t len)
{
	char *out = malloc(lp_base64_len(len) + 1);

	if (out &&
	    lp_base64_encode(data, len, out, lp_base64_len(len) + 1) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

int lp_index_sign(const struct lp_index_signer *s,
		  const struct lp_digest *manifest,
		  const struct lp_index_sig_layer *layers, size_t n,
		  struct lp_index_sig_strings *ret, struct lp_err *err)
{
	struct lp_index_sig_strings out = { 0 };
	uint8_t sig[LP_INDEX_SIG_LEN];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *ctx = NULL;
	struct lp_buf st;
	int r;

	lp_buf_init(&st, LP_INDEX_SIG_MAX_STATEMENT);
	r = lp_index_statement_build(manifest, layers, n, &st);
	if (r < 0) {
		lp_err_set(err, r,
			   "index signature: no statement for %zu "
			   "layers",
			   n);
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		r = -ENOMEM;
		goto out;
	}
	/* Ed25519 signs the message itself: no digest to name */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, st.data, st.len) != 1 ||
	    sig_len != LP_INDEX_SIG_LEN) {
		r = lp_err_set(err, -EIO, "index signature: signing failed");
		goto out;
	}
	out.statement = b64(st.data, st.len);
	out.signature = b64(sig, sig_len);
	out.key = malloc(LP_DIGEST_STR_LEN + 1);
	if (!out.statement || !out.signature || !out.key) {
		r = -ENOMEM;
		goto out;
	}
	lp_digest_format(&s->id, out.key);
	*ret = out;
	memset(&out, 0, sizeof(out));
out:
	lp_index_sig_strings_clear(&out);
	EVP_MD_CTX_free(ctx);
	lp_buf_release(&st);
	return r;
}

int lp_index_keys_new(struct lp_index_keys **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

void lp_index_keys_free(struct lp_index_keys *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		EVP_PKEY_free(k->keys[i].pkey);
	free(k);
}

int lp_index_keys_add_pem(struct lp_index_keys *k, const void *pem, size_t len,
			  struct lp_err *err)
{
	EVP_PKEY *pkey = NULL;
	struct lp_digest id;
	int r;

	if (k->n >= LP_INDEX_SIG_MAX_KEYS)
		return lp_err_set(err, -E2BIG,
				  "over %d trusted keys "
				  "(LP_INDEX_SIG_MAX_KEYS)",
				  LP_INDEX_SIG_MAX_KEYS);
	r = read_pem(pem, len, false, &pkey, err);
	if (r < 0)
		return r;
	r = key_id(pkey, &id);
	if (r < 0) {
		EVP_PKEY_free(pkey);
		return lp_err_set(err, r, "not an Ed25519 public key");
	}
	k->keys[k->n].pkey = pkey;
	k->keys[k->n].id = id;
	k->n++;
	return 0;
}

int lp_index_keys_load(struct lp_index_keys *k, const char *path,
		       struct lp_err *err)
{
	struct lp_err why = { 0 };
	void *pem = NULL;
	size_t len = 0;
	int r;

	r = load_file(path, &pem, &len, err);
	if (r < 0)
		return r;
	r = lp_index_keys_add_pem(k, pem, len, &why);
	if (r < 0)
		lp_err_set(err, r, "%s: %s", path, lp_err_str(&why, r));
	free(pem);
	return r;
}

size_t lp_index_keys_count(const struct lp_index_keys *k)
{
	return k ? k->n : 0;
}

/* ---- signatures ------------------------------------------------------ */

int lp_index_sig_parse(const char *statement, const char *signature,
		       const char *key, struct lp_index_sig **ret,
		       struct lp_err *err)
{
	struct lp_index_sig *s = NULL;
	size_t slen, n = 0;
	int r;

	/* bounded before anything is decoded or allocated */
	slen = strnlen(statement, LP_INDEX_SIG_MAX_STATEMENT_B64 + 1);
	if (slen > LP_INDEX_SIG_MAX_STATEMENT_B64)
		return lp_err_set(err, -EFBIG,
				  "index signature: statement over %zu "
				  "base64 characters",
				  (size_t)LP_INDEX_SIG_MAX_STATEMENT_B64);
	if (strnlen(signature, LP_INDEX_SIG_B64_LEN + 1) !=
	    LP_INDEX_SIG_B64_LEN)
		return lp_err_set(err, -EBADMSG,
				  "index signature: the signature is not %d "
				  "base64 characters",
				  LP_INDEX_SIG_B64_LEN);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (strnlen(key, LP_DIGEST_STR_LEN + 1) != LP_DIGEST_STR_LEN ||
	    lp_digest_parse(key, &s->key) < 0) {
		r = lp_err_set(err, -EBADMSG,
			       "index signature: the key id is not a "
			       "sha256 digest");
		goto out;
	}
	if (lp_base64_decode(signature, LP_INDEX_SIG_B64_LEN, LP_BASE64_STRICT,
			     s->sig, sizeof(s->sig), &n) < 0 ||
	    n != LP_INDEX_SIG_LEN) {
		r = lp_err_set(err, -EBADMSG,
			       "index signature: the signature is not the "
			       "base64 of %d bytes",
			       LP_INDEX_SIG_LEN);
		goto out;
	}
	s->statement = malloc(slen / 4 * 3 + 1);
	if (!s->statement) {
		r = -ENOMEM;
		goto out;
	}
	if (slen % 4 ||
	    lp_base64_decode(statement, slen, LP_BASE64_STRICT, s->statement,
			     slen / 4 * 3 + 1, &s->statement_len) < 0) {
		r = lp_err_set(err, -EBADMSG,
			       "index signature: the statement is not "
			       "base64");
		goto out;
	}
	r = statement_parse(s, err);
	if (r < 0)
		goto out;
	*ret = s;
	s = NULL;
out:
	lp_index_sig_free(s);
	return r;
}

int lp_index_sig_parse_json(const void *json, size_t len,
			    struct lp_index_sig **ret, struct lp_err *err)
{
	json_object *o = NULL, *ann;
	const char *st, *sig, *key;
	int r;

	if (len > LP_INDEX_SIG_MAX_JSON)
		return lp_err_set(err, -EFBIG,
				  "index signature: JSON over %d bytes "
				  "(LP_INDEX_SIG_MAX_JSON)",
				  LP_INDEX_SIG_MAX_JSON);
	r = lp_json_parse(json, len, SIG_JSON_DEPTH, json_type_object, &o);
	if (r < 0) {
		r = lp_err_set(err, r == -ENOMEM ? r : -EBADMSG,
			       "index signature: not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(o, "annotations", &ann) ||
	    !json_object_is_type(ann, json_type_object)) {
		r = lp_err_set(err, -ENOENT, "no annotations: unsigned");
		goto out;
	}
	st = lp_json_str(ann, LP_INDEX_SIG_ANN_STATEMENT);
	sig = lp_json_str(ann, LP_INDEX_SIG_ANN_SIGNATURE);
	key = lp_json_str(ann, LP_INDEX_SIG_ANN_KEY);
	if (!st && !sig && !key &&
	    !json_object_object_get_ex(ann, LP_INDEX_SIG_ANN_STATEMENT, NULL) &&
	    !json_object_object_get_ex(ann, LP_INDEX_SIG_ANN_SIGNATURE, NULL) &&
	    !json_object_object_get_ex(ann, LP_INDEX_SIG_ANN_KEY, NULL)) {
		r = lp_err_set(err, -ENOENT, "no signature annotations");
		goto out;
	}
	if (!st || !sig || !key) {
		r = lp_err_set(err, -EBADMSG,
			       "index signature: the annotations %s, %s and "
			       "%s must all be strings",
			       LP_INDEX_SIG_ANN_STATEMENT,
			       LP_INDEX_SIG_ANN_SIGNATURE,
			       LP_INDEX_SIG_ANN_KEY);
		goto out;
	}
	r = lp_index_sig_parse(st, sig, key, ret, err);
out:
	json_object_put(o);
	return r;
}

void lp_index_sig_free(struct lp_index_sig *s)
{
	if (!s)
		return;
	free(s->statement);
	free(s->layers);
	free(s);
}

const struct lp_digest *lp_index_sig_manifest(const struct lp_index_sig *s)
{
	return &s->manifest;
}

size_t lp_index_sig_nr_layers(const struct lp_index_sig *s)
{
	return s->n_layers;
}

const struct lp_index_sig_layer *
lp_index_sig_layer(const struct lp_index_sig *s, size_t i)
{
	return i < s->n_layers ? &s->layers[i] : NULL;
}

const char *lp_index_trust_name(enum lp_index_trust t)
{
	switch (t) {
	case LP_INDEX_TRUST_SIGNED:
		return "signed";
	case LP_INDEX_TRUST_UNSIGNED:
		return "unsigned";
	case LP_INDEX_TRUST_UNKNOWN_KEY:
		return "unknown_key";
	case LP_INDEX_TRUST_BAD_SIGNATURE:
		return "bad_signature";
	case LP_INDEX_TRUST_PROVEN:
		return "proven";
	}
	return "?";
}

/* Ed25519 verify of @s's statement with @pkey */
static bool verifies(const struct lp_index_sig *s, EVP_PKEY *pkey)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, s->sig, sizeof(s->sig), s->statement,
			      s->statement_len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

enum lp_index_trust lp_index_sig_check(const struct lp_index_sig *s,
				       const struct lp_index_keys *keys,
				       const struct lp_digest *manifest,
				       const struct lp_digest *layer,
				       const struct lp_digest *index,
				       struct lp_err *why)
{
	char a[LP_DIGEST_STR_LEN + 1], b[LP_DIGEST_STR_LEN + 1];
	const struct trusted_key *k = NULL;
	size_t i;

	if (!s) {
		lp_err_set(why, -ENOENT, "the index is not signed");
		return LP_INDEX_TRUST_UNSIGNED;
	}
	for (i = 0; keys && i < keys->n && !k; i++)
		if (lp_digest_equal(&keys->keys[i].id, &s->key))
			k = &keys->keys[i];
	if (!k) {
		lp_digest_format(&s->key, a);
		lp_err_set(why, -EKEYREJECTED,
			   "signed by key %s, which is not among the %zu "
			   "trusted",
			   a, lp_index_keys_count(keys));
		return LP_INDEX_TRUST_UNKNOWN_KEY;
	}
	if (!verifies(s, k->pkey)) {
		lp_digest_format(&s->key, a);
		lp_err_set(why, -EBADMSG,
			   "the signature of key %s does not verify", a);
		return LP_INDEX_TRUST_BAD_SIGNATURE;
	}
	if (manifest && !lp_digest_equal(manifest, &s->manifest)) {
		lp_digest_format(&s->manifest, a);
		lp_digest_format(manifest, b);
		lp_err_set(why, -EBADMSG,
			   "the signed statement is for manifest %s, not %s", a,
			   b);
		return LP_INDEX_TRUST_BAD_SIGNATURE;
	}
	for (i = 0; i < s->n_layers; i++) {
		if (!lp_digest_equal(&s->layers[i].layer, layer))
			continue;
		if (lp_digest_equal(&s->layers[i].index, index))
			return LP_INDEX_TRUST_SIGNED;
		lp_digest_format(&s->layers[i].index, a);
		lp_digest_format(index, b);
		lp_err_set(why, -EBADMSG,
			   "the signed statement names index %s for the "
			   "layer, not %s",
			   a, b);
		return LP_INDEX_TRUST_BAD_SIGNATURE;
	}
	lp_digest_format(layer, a);
	lp_err_set(why, -EBADMSG, "the signed statement does not name layer %s",
		   a);
	return LP_INDEX_TRUST_BAD_SIGNATURE;
}
