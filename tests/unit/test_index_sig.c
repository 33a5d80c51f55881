// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for signed gzip indexes (format/lp_index_sig.h): the
 * statement's exact bytes; a signature that verifies against a trusted key
 * and names the manifest, the layer and the index blob is "signed"; the
 * same signature under another key set is "unknown_key"; a tampered
 * signature, a statement edited after signing, another index blob digest,
 * another manifest, a layer the statement does not name are all
 * "bad_signature"; truncated and oversized base64, a bad key id, malformed
 * statements and JSON carriers are refused by the parser with their bound
 * named. Then the trust switch itself (lp_index_trust()) on the vectors'
 * layer: a trusted index serves a proven-only read deep in the layer from
 * that read's own span with one decode (a few spans fetched, not the layer
 * up to it) and proves no checkpoint by it, where the same read of an
 * untrusted index streams from the first byte; a trusted index whose blob
 * digest lies is still found out by the proving pass.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "slurp.h"
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lp_base64.h"
#include "lp_index.h"
#include "lp_index_sig.h"
#include "lp_indexer.h"

#define SPAN (64 * 1024)

struct keypair {
	char priv_path[64]; /* a PEM file of the private key */
	char *pub_pem; /* the public key in PEM */
	size_t pub_len;
};

static void keypair_new(struct keypair *kp)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *bio;
	char *p;
	long n;
	int fd;

	assert_non_null(pkey);
	snprintf(kp->priv_path, sizeof(kp->priv_path),
		 "/tmp/test_index_sig.XXXXXX");
	fd = mkstemp(kp->priv_path);
	assert_true(fd >= 0);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(
		PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL),
		1);
	n = BIO_get_mem_data(bio, &p);
	assert_int_equal(write(fd, p, (size_t)n), n);
	close(fd);
	BIO_free(bio);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
	n = BIO_get_mem_data(bio, &p);
	kp->pub_pem = malloc((size_t)n);
	memcpy(kp->pub_pem, p, (size_t)n);
	kp->pub_len = (size_t)n;
	BIO_free(bio);
	EVP_PKEY_free(pkey);
}

static void keypair_free(struct keypair *kp)
{
	unlink(kp->priv_path);
	free(kp->pub_pem);
}

static void digest_of(const char *s, struct lp_digest *d)
{
	lp_sha256(s, strlen(s), d);
}

struct signed_set {
	struct keypair a, b; /* a signs; b is another key */
	struct lp_index_keys *trust_a, *trust_b;
	struct lp_digest manifest;
	struct lp_index_sig_layer layers[2];
	struct lp_index_sig_strings sig;
};

static void signed_set_new(struct signed_set *s)
{
	struct lp_index_signer *signer = NULL;
	struct lp_err err = { 0 };
	int r;

	keypair_new(&s->a);
	keypair_new(&s->b);
	assert_int_equal(lp_index_keys_new(&s->trust_a), 0);
	assert_int_equal(lp_index_keys_new(&s->trust_b), 0);
	assert_int_equal(lp_index_keys_add_pem(s->trust_a, s->a.pub_pem,
					       s->a.pub_len, &err),
			 0);
	assert_int_equal(lp_index_keys_add_pem(s->trust_b, s->b.pub_pem,
					       s->b.pub_len, &err),
			 0);
	digest_of("manifest", &s->manifest);
	digest_of("layer0", &s->layers[0].layer);
	digest_of("index0", &s->layers[0].index);
	digest_of("layer1", &s->layers[1].layer);
	digest_of("index1", &s->layers[1].index);
	r = lp_index_signer_load(s->a.priv_path, &signer, &err);
	if (r < 0)
		fail_msg("signer: %s", lp_err_str(&err, r));
	r = lp_index_sign(signer, &s->manifest, s->layers, 2, &s->sig, &err);
	if (r < 0)
		fail_msg("sign: %s", lp_err_str(&err, r));
	lp_index_signer_free(signer);
}

static void signed_set_free(struct signed_set *s)
{
	lp_index_sig_strings_clear(&s->sig);
	lp_index_keys_free(s->trust_a);
	lp_index_keys_free(s->trust_b);
	keypair_free(&s->a);
	keypair_free(&s->b);
}

static enum lp_index_trust check(const struct lp_index_sig_strings *st,
				 const struct lp_index_keys *keys,
				 const struct lp_digest *manifest,
				 const struct lp_index_sig_layer *l)
{
	struct lp_index_sig *sig = NULL;
	struct lp_err err = { 0 }, why = { 0 };
	enum lp_index_trust t;
	int r;

	r = lp_index_sig_parse(st->statement, st->signature, st->key, &sig,
			       &err);
	if (r < 0)
		fail_msg("parse: %s", lp_err_str(&err, r));
	t = lp_index_sig_check(sig, keys, manifest, &l->layer, &l->index, &why);
	lp_index_sig_free(sig);
	return t;
}

/* the statement, byte for byte (docs/format.md) */
static void test_statement_bytes(void **state)
{
	struct lp_index_sig_layer l[2];
	struct lp_digest m;
	char ms[LP_DIGEST_STR_LEN + 1], a[LP_DIGEST_STR_LEN + 1],
		b[LP_DIGEST_STR_LEN + 1], want[1024];
	struct lp_buf out;

	(void)state;
	digest_of("m", &m);
	digest_of("l", &l[0].layer);
	digest_of("i", &l[0].index);
	lp_digest_format(&m, ms);
	lp_digest_format(&l[0].layer, a);
	lp_digest_format(&l[0].index, b);
	snprintf(want, sizeof(want),
		 "lazypull-index-signature-v1\nmanifest %s\nlayer %s index "
		 "%s\n",
		 ms, a, b);
	lp_buf_init(&out, LP_INDEX_SIG_MAX_STATEMENT);
	assert_int_equal(lp_index_statement_build(&m, l, 1, &out), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	assert_int_equal(out.len, sizeof(LP_INDEX_SIG_MAGIC) - 1 + 9 +
					  LP_DIGEST_STR_LEN + 1 +
					  LP_INDEX_SIG_LAYER_LINE);
	/* no layer, a layer twice */
	lp_buf_reset(&out);
	assert_int_equal(lp_index_statement_build(&m, l, 0, &out), -EINVAL);
	l[1] = l[0];
	assert_int_equal(lp_index_statement_build(&m, l, 2, &out), -EINVAL);
	lp_buf_release(&out);
}

static void test_good_and_wrong_key(void **state)
{
	struct signed_set s;

	(void)state;
	signed_set_new(&s);
	assert_int_equal(check(&s.sig, s.trust_a, &s.manifest, &s.layers[0]),
			 LP_INDEX_TRUST_SIGNED);
	assert_int_equal(check(&s.sig, s.trust_a, &s.manifest, &s.layers[1]),
			 LP_INDEX_TRUST_SIGNED);
	/* no manifest known: the layer and index still bind */
	assert_int_equal(check(&s.sig, s.trust_a, NULL, &s.layers[1]),
			 LP_INDEX_TRUST_SIGNED);
	/* a key the node does not trust, or none */
	assert_int_equal(check(&s.sig, s.trust_b, &s.manifest, &s.layers[0]),
			 LP_INDEX_TRUST_UNKNOWN_KEY);
	assert_int_equal(check(&s.sig, NULL, &s.manifest, &s.layers[0]),
			 LP_INDEX_TRUST_UNKNOWN_KEY);
	assert_int_equal(lp_index_sig_check(NULL, s.trust_a, &s.manifest,
					    &s.layers[0].layer,
					    &s.layers[0].index, NULL),
			 LP_INDEX_TRUST_UNSIGNED);
	assert_string_equal(lp_index_trust_name(LP_INDEX_TRUST_UNKNOWN_KEY),
			    "unknown_key");
	signed_set_free(&s);
}

/* re-encode @s's statement with @from replaced by @to (same length) */
static char *edit_statement(const char *b64, const char *from, const char *to)
{
	uint8_t raw[LP_INDEX_SIG_MAX_STATEMENT];
	size_t n = 0;
	char *p, *out;

	assert_int_equal(lp_base64_decode(b64, strlen(b64), LP_BASE64_STRICT,
					  raw, sizeof(raw) - 1, &n),
			 0);
	raw[n] = '\0';
	p = strstr((char *)raw, from);
	assert_non_null(p);
	memcpy(p, to, strlen(to));
	out = malloc(lp_base64_len(n) + 1);
	assert_int_equal(lp_base64_encode(raw, n, out, lp_base64_len(n) + 1),
			 0);
	return out;
}

static void test_tampered(void **state)
{
	struct lp_index_sig_layer other;
	struct lp_digest m2;
	struct lp_index_sig_strings t;
	char is[LP_DIGEST_STR_LEN + 1], os[LP_DIGEST_STR_LEN + 1];
	struct signed_set s;

	(void)state;
	signed_set_new(&s);
	/* the index blob replaced after signing: its digest is another */
	other = s.layers[0];
	digest_of("index0-forged", &other.index);
	assert_int_equal(check(&s.sig, s.trust_a, &s.manifest, &other),
			 LP_INDEX_TRUST_BAD_SIGNATURE);
	/* a layer the statement does not name */
	digest_of("layer9", &other.layer);
	other.index = s.layers[0].index;
	assert_int_equal(check(&s.sig, s.trust_a, &s.manifest, &other),
			 LP_INDEX_TRUST_BAD_SIGNATURE);
	/* a statement for another manifest */
	digest_of("another manifest", &m2);
	assert_int_equal(check(&s.sig, s.trust_a, &m2, &s.layers[0]),
			 LP_INDEX_TRUST_BAD_SIGNATURE);
	/* the statement edited after signing (the index digest swapped
	 * for the forged one): the signature no longer verifies */
	lp_digest_format(&s.layers[0].index, is);
	digest_of("index0-forged", &other.index);
	lp_digest_format(&other.index, os);
	t = s.sig;
	t.statement = edit_statement(s.sig.statement, is, os);
	other.layer = s.layers[0].layer;
	assert_int_equal(check(&t, s.trust_a, &s.manifest, &other),
			 LP_INDEX_TRUST_BAD_SIGNATURE);
	free(t.statement);
	/* one bit of the signature flipped */
	t = s.sig;
	t.signature = strdup(s.sig.signature);
	t.signature[10] = t.signature[10] == 'A' ? 'B' : 'A';
	assert_int_equal(check(&t, s.trust_a, &s.manifest, &s.layers[0]),
			 LP_INDEX_TRUST_BAD_SIGNATURE);
	free(t.signature);
	signed_set_free(&s);
}

static int parse3(const char *st, const char *sig, const char *key)
{
	struct lp_index_sig *s = NULL;
	struct lp_err err = { 0 };
	int r = lp_index_sig_parse(st, sig, key, &s, &err);

	assert_true(r == 0 || !s);
	lp_index_sig_free(s);
	return r;
}

static char *b64_of(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(lp_base64_len(n) + 1);

	assert_int_equal(lp_base64_encode(text, n, out, lp_base64_len(n) + 1),
			 0);
	return out;
}

static void test_parse_bounds(void **state)
{
	struct signed_set s;
	char *big, *p;
	size_t n;

	(void)state;
	signed_set_new(&s);
	assert_int_equal(parse3(s.sig.statement, s.sig.signature, s.sig.key),
			 0);
	/* truncated signature base64, one character too many */
	p = strdup(s.sig.signature);
	p[LP_INDEX_SIG_B64_LEN - 1] = '\0';
	assert_int_equal(parse3(s.sig.statement, p, s.sig.key), -EBADMSG);
	free(p);
	n = strlen(s.sig.signature);
	p = malloc(n + 2);
	snprintf(p, n + 2, "%sA", s.sig.signature);
	assert_int_equal(parse3(s.sig.statement, p, s.sig.key), -EBADMSG);
	free(p);
	/* truncated statement base64 (not a multiple of 4, then a whole
	 * group short: a statement cut inside a line) */
	p = strdup(s.sig.statement);
	p[strlen(p) - 1] = '\0';
	assert_int_equal(parse3(p, s.sig.signature, s.sig.key), -EBADMSG);
	p[strlen(p) - 3] = '\0';
	assert_int_equal(parse3(p, s.sig.signature, s.sig.key), -EBADMSG);
	free(p);
	/* oversized statement: refused before it is decoded */
	n = LP_INDEX_SIG_MAX_STATEMENT_B64 + 4;
	big = malloc(n + 1);
	memset(big, 'A', n);
	big[n] = '\0';
	assert_int_equal(parse3(big, s.sig.signature, s.sig.key), -EFBIG);
	free(big);
	/* key ids: short, long, not hex */
	assert_int_equal(parse3(s.sig.statement, s.sig.signature, "sha256:ab"),
			 -EBADMSG);
	p = malloc(strlen(s.sig.key) + 2);
	sprintf(p, "%s0", s.sig.key);
	assert_int_equal(parse3(s.sig.statement, s.sig.signature, p), -EBADMSG);
	p[strlen(s.sig.key) - 1] = 'X';
	p[strlen(s.sig.key)] = '\0';
	assert_int_equal(parse3(s.sig.statement, s.sig.signature, p), -EBADMSG);
	free(p);
	signed_set_free(&s);
}

static void test_statement_grammar(void **state)
{
	static const char *const bad[] = {
		/* another version */
		"lazypull-index-signature-v2\nmanifest sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\nlayer sha256:"
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		" index sha256:"
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n",
		/* no layer */
		"lazypull-index-signature-v1\nmanifest sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		/* uppercase hex */
		"lazypull-index-signature-v1\nmanifest sha256:"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"\nlayer sha256:"
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		" index sha256:"
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n",
		/* no final newline */
		"lazypull-index-signature-v1\nmanifest sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\nlayer sha256:"
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		" index sha256:"
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		/* a layer twice */
		"lazypull-index-signature-v1\nmanifest sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\nlayer sha256:"
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		" index sha256:"
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
		"\nlayer sha256:"
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		" index sha256:"
		"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\n",
	};
	static const char sig[] =
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAA==";
	static const char key[] =
		"sha256:"
		"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
		"eeeeeeeeeeeeeeeeeee";
	size_t i;
	char *b;

	(void)state;
	assert_int_equal(strlen(sig), LP_INDEX_SIG_B64_LEN);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = b64_of(bad[i]);
		assert_int_equal(parse3(b, sig, key), -EBADMSG);
		free(b);
	}
}

static int parse_json(const char *json)
{
	struct lp_index_sig *s = NULL;
	int r = lp_index_sig_parse_json(json, strlen(json), &s, NULL);

	lp_index_sig_free(s);
	return r;
}

static void test_json_carrier(void **state)
{
	struct signed_set s;
	char json[4096], *big;

	(void)state;
	signed_set_new(&s);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"annotations\":{\"%s\":\"%s\","
		 "\"%s\":\"%s\",\"%s\":\"%s\",\"other\":\"x\"}}",
		 LP_INDEX_SIG_ANN_STATEMENT, s.sig.statement,
		 LP_INDEX_SIG_ANN_SIGNATURE, s.sig.signature,
		 LP_INDEX_SIG_ANN_KEY, s.sig.key);
	assert_int_equal(parse_json(json), 0);
	/* unsigned: no annotations, or none of ours */
	assert_int_equal(parse_json("{\"schemaVersion\":2}"), -ENOENT);
	assert_int_equal(parse_json("{\"annotations\":{\"a\":\"b\"}}"),
			 -ENOENT);
	/* one of the three missing, or not a string */
	snprintf(json, sizeof(json), "{\"annotations\":{\"%s\":\"%s\"}}",
		 LP_INDEX_SIG_ANN_STATEMENT, s.sig.statement);
	assert_int_equal(parse_json(json), -EBADMSG);
	snprintf(json, sizeof(json),
		 "{\"annotations\":{\"%s\":\"%s\",\"%s\":1,\"%s\":\"%s\"}}",
		 LP_INDEX_SIG_ANN_STATEMENT, s.sig.statement,
		 LP_INDEX_SIG_ANN_SIGNATURE, LP_INDEX_SIG_ANN_KEY, s.sig.key);
	assert_int_equal(parse_json(json), -EBADMSG);
	assert_int_equal(parse_json("{\"annotations\":"), -EBADMSG);
	/* over LP_INDEX_SIG_MAX_JSON: refused before it is parsed */
	big = malloc(LP_INDEX_SIG_MAX_JSON + 2);
	memset(big, ' ', LP_INDEX_SIG_MAX_JSON + 1);
	big[0] = '{';
	big[LP_INDEX_SIG_MAX_JSON] = '}';
	big[LP_INDEX_SIG_MAX_JSON + 1] = '\0';
	assert_int_equal(parse_json(big), -EFBIG);
	free(big);
	signed_set_free(&s);
}

/* ---- the trust switch on a real layer ------------------------------ */

static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *ret_len)
{
	size_t cap = len * 8 + 65536, out = 0;
	uint8_t *buf = malloc(cap);
	z_stream z = { 0 };
	int r;

	assert_int_equal(inflateInit2(&z, 47), Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	for (;;) {
		if (cap - out < 65536) {
			uint8_t *bigger = realloc(buf, cap * 2);

			assert_non_null(bigger);
			buf = bigger;
			cap *= 2;
		}
		z.next_out = buf + out;
		z.avail_out = (uInt)(cap - out);
		r = inflate(&z, Z_NO_FLUSH);
		out = cap - z.avail_out;
		if (r == Z_STREAM_END && z.avail_in)
			assert_int_equal(inflateReset(&z), Z_OK);
		else if (r == Z_STREAM_END)
			break;
		else
			assert_int_equal(r, Z_OK);
	}
	inflateEnd(&z);
	*ret_len = out;
	return buf;
}

struct layer {
	uint8_t *gz, *tar, *idx;
	size_t gz_len, tar_len, idx_len;
	struct lp_blob *blob;
};

static void layer_new(struct layer *l)
{
	struct lp_index_build_result res;
	struct lp_err err = { 0 };
	struct lp_buf out;
	int fd = memfd_create("layer", 0), r;

	l->gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &l->gz_len);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, l->gz, l->gz_len), (ssize_t)l->gz_len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, SPAN, LP_INDEX_GRAIN_DEFAULT, NULL, &out, &res,
			   &err);
	if (r < 0)
		fail_msg("build: %s", lp_err_str(&err, r));
	close(fd);
	l->idx = lp_buf_steal(&out, &l->idx_len);
	l->tar = gunzip(l->gz, l->gz_len, &l->tar_len);
	assert_int_equal(lp_blob_new_mem(l->gz, l->gz_len, "layer", &l->blob),
			 0);
}

static void layer_free(struct layer *l)
{
	lp_blob_unref(l->blob);
	free(l->gz);
	free(l->tar);
	free(l->idx);
}

/* a proven-only read of 100 bytes at 90% of the layer; its spans fetched */
static uint64_t deep_read(struct layer *l, struct lp_index *ix)
{
	struct lp_index_stream_stats st = { 0 };
	struct lp_err err = { 0 };
	uint64_t off = l->tar_len / 10 * 9;
	uint8_t buf[100];
	int r;

	r = lp_index_read(ix, l->blob, off, buf, sizeof(buf), NULL, 0, true,
			  &st, &err);
	if (r < 0)
		fail_msg("read: %s", lp_err_str(&err, r));
	assert_memory_equal(buf, l->tar + off, sizeof(buf));
	return st.spans;
}

static void test_trusted_reads(void **state)
{
	struct lp_index *ix = NULL;
	struct layer l;
	size_t n, k, spans;

	(void)state;
	layer_new(&l);
	/* untrusted (the default): the read streams from the first byte */
	assert_int_equal(lp_index_parse(l.idx, l.idx_len, &ix, NULL), 0);
	n = lp_index_nr_checkpoints(ix);
	assert_true(n > 20);
	k = 0;
	while (k + 1 < n &&
	       lp_index_checkpoint(ix, k + 1)->out <= l.tar_len / 10 * 9)
		k++;
	assert_false(lp_index_trusted(ix));
	assert_false(lp_index_checkpoint_startable(ix, k));
	spans = deep_read(&l, ix);
	assert_true(spans >= k);
	assert_true(lp_index_checkpoint_verified(ix, k));
	assert_int_equal(lp_index_trusted_reads(ix), 0);
	lp_index_free(ix);
	/* trusted: from its own span, one decode, proving nothing */
	assert_int_equal(lp_index_parse(l.idx, l.idx_len, &ix, NULL), 0);
	lp_index_trust(ix);
	assert_true(lp_index_trusted(ix));
	assert_true(lp_index_checkpoint_startable(ix, k));
	spans = deep_read(&l, ix);
	assert_true(spans <= 2);
	assert_false(lp_index_checkpoint_verified(ix, k));
	assert_int_equal(lp_index_trusted_reads(ix), 1);
	lp_index_free(ix);
	layer_free(&l);
}

/* a trusted index is still checked by the proving pass */
static void test_trusted_still_proven(void **state)
{
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 };
	struct layer l;
	uint8_t *forged;

	(void)state;
	layer_new(&l);
	forged = malloc(l.idx_len);
	memcpy(forged, l.idx, l.idx_len);
	forged[40] ^= 0xff; /* the blob digest (header offset 32..63) */
	assert_int_equal(lp_index_parse(forged, l.idx_len, &ix, NULL), 0);
	lp_index_trust(ix);
	deep_read(&l, ix); /* served: the bytes are the layer's */
	assert_int_equal(lp_index_prove(ix, l.blob, lp_index_check_header, NULL,
					NULL, NULL, &err),
			 -EBADMSG);
	lp_index_free(ix);
	/* a window that lies (checkpoints 1 and 2 given each other's, as
	 * test_index's lie_window), trusted: the pass still finds it */
	memcpy(forged, l.idx, l.idx_len);
	{
		uint8_t *c1 = forged + LP_INDEX_HEADER_SIZE + LP_INDEX_CP_SIZE,
			*c2 = c1 + LP_INDEX_CP_SIZE, tmp[12];

		memcpy(tmp, c1 + 16, sizeof(tmp));
		memcpy(c1 + 16, c2 + 16, sizeof(tmp));
		memcpy(c2 + 16, tmp, sizeof(tmp));
	}
	assert_int_equal(lp_index_parse(forged, l.idx_len, &ix, NULL), 0);
	assert_true(lp_index_nr_checkpoints(ix) > 2);
	lp_index_trust(ix);
	memset(&err, 0, sizeof(err));
	assert_int_equal(lp_index_prove(ix, l.blob, lp_index_check_header, NULL,
					NULL, NULL, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "window"));
	lp_index_free(ix);
	/* the true index, trusted: the pass agrees, and proves them all */
	assert_int_equal(lp_index_parse(l.idx, l.idx_len, &ix, NULL), 0);
	lp_index_trust(ix);
	assert_int_equal(lp_index_prove(ix, l.blob, lp_index_check_header, NULL,
					NULL, NULL, &err),
			 0);
	assert_true(lp_index_checkpoint_verified(
		ix, lp_index_nr_checkpoints(ix) - 1));
	lp_index_free(ix);
	free(forged);
	layer_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statement_bytes),
		cmocka_unit_test(test_good_and_wrong_key),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_statement_grammar),
		cmocka_unit_test(test_json_carrier),
		cmocka_unit_test(test_trusted_reads),
		cmocka_unit_test(test_trusted_still_proven),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
