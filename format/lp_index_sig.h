/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed gzip indexes (docs/format.md, "Signed indexes"). A gzip index is
 * input from the network that the image manifest's digest does not cover,
 * so by default a mount believes a checkpoint only once a stream from the
 * layer's first byte has proven it. A node admin may instead trust the
 * indexes a known key signed: `lazypull index --sign-key KEY.pem` signs a
 * STATEMENT that binds the indexes to the image (the subject manifest
 * digest; per layer its digest and its index blob's digest) with Ed25519,
 * and the snapshotter (index_trusted_keys) or `lazypull mount
 * --index-trusted-key` verifies it. A trusted index's checkpoints are read
 * from directly and its plain entries' attributes answered before their
 * header checks (lp_index_trust()); every other check stays.
 *
 * The statement, byte by byte (ASCII, each line ended by one '\n'):
 *	lazypull-index-signature-v1
 *	manifest sha256:<64 lowercase hex>
 *	layer sha256:<64 hex> index sha256:<64 hex>     (1..LP_INDEX_SIG_MAX_LAYERS
 *	...                                              lines, no layer twice)
 * It travels with its signature and the signer's key id (sha256 of the raw
 * 32-byte public key) as three strings (LP_INDEX_SIG_ANN_*): annotations of
 * the referrer artifact manifest, or, for `lazypull index --output DIR`,
 * a sidecar file DIR/<manifest hex>.gzidx.sig holding
 * {"annotations": {those three}}. Both are read by
 * lp_index_sig_parse_json(), every size bounded before it is decoded.
 *
 * Keys are OpenSSL EVP_PKEYs of type Ed25519 in PEM (`openssl genpkey
 * -algorithm ed25519`; the public half: `openssl pkey -pubout`).
 *
 * Threads: every object here is immutable once made; share freely.
 */
#ifndef LP_INDEX_SIG_H
#define LP_INDEX_SIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_err.h"

#define LP_INDEX_SIG_MAGIC "lazypull-index-signature-v1\n"
/* the annotations (and the sidecar's members) that carry a signature */
#define LP_INDEX_SIG_ANN_STATEMENT "dev.lazypull.gzip-index.statement"
#define LP_INDEX_SIG_ANN_SIGNATURE "dev.lazypull.gzip-index.signature"
#define LP_INDEX_SIG_ANN_KEY "dev.lazypull.gzip-index.key"
/* the sidecar of `lazypull index --output DIR --sign-key`: DIR/<manifest
 * hex> + this */
#define LP_INDEX_SIG_SUFFIX ".gzidx.sig"

/* Bounds (house rule 8). */
#define LP_INDEX_SIG_MAX_LAYERS 128 /* layer lines of a statement */
#define LP_INDEX_SIG_LAYER_LINE \
	156 /* "layer sha256:<hex> index sha256:<hex>\n" */
#define LP_INDEX_SIG_MAX_STATEMENT                                 \
	(sizeof(LP_INDEX_SIG_MAGIC) - 1 + 16 + LP_DIGEST_STR_LEN + \
	 LP_INDEX_SIG_MAX_LAYERS * LP_INDEX_SIG_LAYER_LINE)
#define LP_INDEX_SIG_MAX_STATEMENT_B64 \
	((LP_INDEX_SIG_MAX_STATEMENT + 2) / 3 * 4)
#define LP_INDEX_SIG_LEN 64 /* an Ed25519 signature */
#define LP_INDEX_SIG_B64_LEN 88 /* its padded base64 */
#define LP_INDEX_SIG_MAX_JSON (64 * 1024) /* a sidecar or a manifest read */
#define LP_INDEX_SIG_MAX_PEM (16 * 1024) /* a key file */
#define LP_INDEX_SIG_MAX_KEYS 16 /* trusted keys of a node */

/* one indexed layer of a statement */
struct lp_index_sig_layer {
	struct lp_digest layer; /* the layer blob's digest */
	struct lp_digest index; /* sha256 of its index blob */
};

/* ---- statements ---------------------------------------------------- */

/*
 * lp_index_statement_build() - the statement for image manifest @manifest
 * and its @n indexed layers (@layers, in manifest order) appended to @out.
 * Returns 0, -EINVAL (n is 0, over LP_INDEX_SIG_MAX_LAYERS, or a layer
 * twice), -ENOMEM.
 */
int lp_index_statement_build(const struct lp_digest *manifest,
			     const struct lp_index_sig_layer *layers, size_t n,
			     struct lp_buf *out);

/* ---- keys ------------------------------------------------------------ */

/* a private key that signs (`lazypull index --sign-key`) */
struct lp_index_signer;

/*
 * lp_index_signer_load() - the Ed25519 private key in PEM file @path (at
 * most LP_INDEX_SIG_MAX_PEM bytes). Returns 0, -EINVAL (not PEM, not an
 * Ed25519 private key), -EFBIG, or the file's -errno; @err says which.
 */
int lp_index_signer_load(const char *path, struct lp_index_signer **ret,
			 struct lp_err *err);
void lp_index_signer_free(struct lp_index_signer *s); /* NULL allowed */

/* the three strings that carry a signature (malloc'ed; free with
 * lp_index_sig_strings_clear()) */
struct lp_index_sig_strings {
	char *statement; /* base64 of the statement */
	char *signature; /* base64 of the 64-byte signature */
	char *key; /* "sha256:<hex>" of the raw public key */
};
void lp_index_sig_strings_clear(struct lp_index_sig_strings *s);

/*
 * lp_index_sign() - build the statement for @manifest and @layers
 * (lp_index_statement_build()), sign it with @s and fill @ret. Returns 0,
 * -EINVAL, -ENOMEM, -EIO (the signing failed; @err says so).
 */
int lp_index_sign(const struct lp_index_signer *s,
		  const struct lp_digest *manifest,
		  const struct lp_index_sig_layer *layers, size_t n,
		  struct lp_index_sig_strings *ret, struct lp_err *err);

/* the public keys a node trusts */
struct lp_index_keys;

int lp_index_keys_new(struct lp_index_keys **ret);
void lp_index_keys_free(struct lp_index_keys *k); /* NULL allowed */
/*
 * lp_index_keys_add_pem() - one more trusted key: an Ed25519 public key in
 * PEM (@len bytes at @pem, at most LP_INDEX_SIG_MAX_PEM). 0, -E2BIG (over
 * LP_INDEX_SIG_MAX_KEYS), -EINVAL (not such a key), -EFBIG, -ENOMEM.
 */
int lp_index_keys_add_pem(struct lp_index_keys *k, const void *pem, size_t len,
			  struct lp_err *err);
/* lp_index_keys_load() - lp_index_keys_add_pem() of file @path */
int lp_index_keys_load(struct lp_index_keys *k, const char *path,
		       struct lp_err *err);
size_t lp_index_keys_count(const struct lp_index_keys *k); /* NULL: 0 */

/* ---- signatures ------------------------------------------------------ */

/* a parsed signature: the statement's fields, its bytes, the signature */
struct lp_index_sig;

/*
 * lp_index_sig_parse() - the three strings of a signature (NUL-ended,
 * borrowed), each bounded before it is decoded: the statement's base64 at
 * most LP_INDEX_SIG_MAX_STATEMENT_B64 characters (strict base64) and then
 * exactly the statement grammar above; the signature exactly
 * LP_INDEX_SIG_B64_LEN characters decoding to 64 bytes; the key id a
 * digest string. Nothing is verified here. Returns 0, -EBADMSG (malformed),
 * -EFBIG (over a bound), -ENOMEM; @err says what.
 */
int lp_index_sig_parse(const char *statement, const char *signature,
		       const char *key, struct lp_index_sig **ret,
		       struct lp_err *err);
/*
 * lp_index_sig_parse_json() - the signature in the "annotations" object of
 * JSON @json (@len bytes, at most LP_INDEX_SIG_MAX_JSON): an artifact
 * manifest's, or a sidecar's. Returns as lp_index_sig_parse(), and -ENOENT
 * when the object carries none of the three annotations (unsigned).
 */
int lp_index_sig_parse_json(const void *json, size_t len,
			    struct lp_index_sig **ret, struct lp_err *err);
void lp_index_sig_free(struct lp_index_sig *s); /* NULL allowed */
const struct lp_digest *lp_index_sig_manifest(const struct lp_index_sig *s);
size_t lp_index_sig_nr_layers(const struct lp_index_sig *s);
const struct lp_index_sig_layer *
lp_index_sig_layer(const struct lp_index_sig *s, size_t i);

/* what a signature check concluded (the metric's label, one log line) */
enum lp_index_trust {
	LP_INDEX_TRUST_SIGNED, /* verified by a trusted key, names this */
	LP_INDEX_TRUST_UNSIGNED, /* no signature */
	LP_INDEX_TRUST_UNKNOWN_KEY, /* signed by a key the node does not trust */
	/* the signature does not verify, does not parse, or its statement
	 * names another manifest, layer or index blob */
	LP_INDEX_TRUST_BAD_SIGNATURE,
	/* not a signature's verdict: this node's proving pass read the whole
	 * layer through this very index blob before and found it true (the
	 * snapshotter's "proven once" record) */
	LP_INDEX_TRUST_PROVEN,
};
#define LP_INDEX_TRUST_NR 5
/* "signed", "unsigned", "unknown_key", "bad_signature", "proven" */
const char *lp_index_trust_name(enum lp_index_trust t);

/*
 * lp_index_sig_check() - whether signature @s (NULL: unsigned) makes the
 * index blob of digest @index, of layer @layer, of image manifest
 * @manifest (NULL: not compared, the caller knows no manifest) trusted:
 * its key id is one of @keys, the Ed25519 signature over the statement's
 * exact bytes verifies with that key, and the statement names @manifest
 * and the pair (@layer, @index). @why (NULL allowed) says why not.
 */
enum lp_index_trust lp_index_sig_check(const struct lp_index_sig *s,
				       const struct lp_index_keys *keys,
				       const struct lp_digest *manifest,
				       const struct lp_digest *layer,
				       const struct lp_digest *index,
				       struct lp_err *why);

#endif /* LP_INDEX_SIG_H */
