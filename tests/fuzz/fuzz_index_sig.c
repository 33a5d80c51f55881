// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: gzip index signatures (format/lp_index_sig.h), what the
 * snapshotter reads from a referrer artifact's annotations or a sidecar
 * file. The input is parsed twice: whole, as the JSON carrier
 * (lp_index_sig_parse_json()), and split at its first two NUL bytes into
 * the three strings (statement base64, signature base64, key id) for
 * lp_index_sig_parse(). On success the statement names 1 to
 * LP_INDEX_SIG_MAX_LAYERS layers, none twice, and rebuilding it from what
 * was parsed gives a statement the builder accepts; a check against no
 * trusted key is "unknown_key", never "signed". Against the fuzz key
 * (FUZZ_KEY, whose id the corpus's *_fuzz_key inputs carry, one of them
 * signed by its private half) the Ed25519 verify runs on the input's
 * bytes: "signed" only for the statement's own digests, never once one
 * digest (the index blob's) differs. On failure nothing is handed out.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_index_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the public half of the key that signed corpus/index_sig/signed_fuzz_key
 * (its private half is not kept) */
static const char FUZZ_KEY[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MCowBQYDK2VwAyEAtox3XWNj3yvgO6Il3RCtD8UCvVoUqjMv7SymdhuCsqE=\n"
	"-----END PUBLIC KEY-----\n";

static struct lp_index_keys *fuzz_keys(void)
{
	static struct lp_index_keys *keys;
	struct lp_err err = { 0 };

	if (!keys && (lp_index_keys_new(&keys) < 0 ||
		      lp_index_keys_add_pem(keys, FUZZ_KEY,
					    sizeof(FUZZ_KEY) - 1, &err) < 0))
		abort();
	return keys;
}

static void check(struct lp_index_sig *s)
{
	const struct lp_index_sig_layer *l;
	struct lp_buf b;
	size_t n, i, j;

	n = lp_index_sig_nr_layers(s);
	if (n == 0 || n > LP_INDEX_SIG_MAX_LAYERS)
		abort();
	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			if (lp_digest_equal(&lp_index_sig_layer(s, i)->layer,
					    &lp_index_sig_layer(s, j)->layer))
				abort();
	l = lp_index_sig_layer(s, 0);
	lp_buf_init(&b, LP_INDEX_SIG_MAX_STATEMENT);
	if (lp_index_statement_build(lp_index_sig_manifest(s), l, n, &b) < 0 &&
	    b.len < LP_INDEX_SIG_MAX_STATEMENT)
		abort();
	lp_buf_release(&b);
	if (lp_index_sig_check(s, NULL, NULL, &l->layer, &l->index, NULL) !=
	    LP_INDEX_TRUST_UNKNOWN_KEY)
		abort();
	if (lp_index_sig_check(s, fuzz_keys(), lp_index_sig_manifest(s),
			       &l->layer, &l->index,
			       NULL) == LP_INDEX_TRUST_SIGNED) {
		struct lp_digest other = l->index;

		other.b[0] ^= 1;
		if (lp_index_sig_check(s, fuzz_keys(), lp_index_sig_manifest(s),
				       &l->layer, &other,
				       NULL) == LP_INDEX_TRUST_SIGNED)
			abort(); /* a signature not bound to its digests */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_index_sig *s = NULL;
	struct lp_err err = { 0 };
	char *copy, *p2, *p3;
	int r;

	r = lp_index_sig_parse_json(data, size, &s, &err);
	if (r < 0 && s)
		abort();
	if (r == 0)
		check(s);
	lp_index_sig_free(s);
	s = NULL;
	lp_err_clear(&err);

	copy = malloc(size + 3);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = copy[size + 1] = copy[size + 2] = '\0';
	/* three NULs at the end: p2 <= copy + size + 1, p3 <= + 2 */
	p2 = copy + strlen(copy) + 1;
	p3 = p2 + strlen(p2) + 1;
	r = lp_index_sig_parse(copy, p2, p3, &s, &err);
	if (r < 0 && s)
		abort();
	if (r == 0)
		check(s);
	lp_index_sig_free(s);
	lp_err_clear(&err);
	free(copy);
	return 0;
}
