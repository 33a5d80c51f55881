/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper (header-only, for test_layer.c and test_fs.c): an eStargz
 * blob whose TOC is rewritten to take digests away from one file or to make
 * its file digest lie, with the payload and the footer kept (the new TOC
 * member sits at the old TOC offset). The digest policy (lp_chunk_check)
 * must then accept, or refuse, that file's chunks the same way in every
 * reader.
 */
#ifndef CRAFT_TOC_H
#define CRAFT_TOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <zlib.h>

#include "lp_layer.h"

enum craft_mode {
	CRAFT_HONEST, /* no chunkDigest; the (right) file digest stays */
	CRAFT_LIE, /* no chunkDigest; the file digest is another's */
	CRAFT_NONE, /* neither chunkDigest nor file digest */
	CRAFT_MULTI, /* every chunk of the file loses its chunkDigest */
};

#define CRAFT_TAR_BLOCK 512

/* a ustar header for "stargz.index.json" of @size bytes */
static void craft_tar_header(uint8_t *h, size_t size)
{
	unsigned int sum = 0;
	char num[32];
	size_t i;

	memset(h, 0, CRAFT_TAR_BLOCK);
	strcpy((char *)h, "stargz.index.json");
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 108, "0000000", 7);
	memcpy(h + 116, "0000000", 7);
	snprintf(num, sizeof(num), "%011zo", size & 077777777777);
	memcpy(h + 124, num, 11);
	memcpy(h + 136, "00000000000", 11);
	h[156] = '0';
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	memset(h + 148, ' ', 8);
	for (i = 0; i < CRAFT_TAR_BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* gzip @len bytes at @src into a new buffer (*ret_len bytes) */
static uint8_t *craft_gzip(const uint8_t *src, size_t len, size_t *ret_len)
{
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);
	z_stream z = { 0 };

	if (!out)
		return NULL;
	if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*ret_len = z.total_out;
	deflateEnd(&z);
	return out;
}

static bool craft_is(json_object *e, const char *key, const char *val)
{
	json_object *v;

	return json_object_object_get_ex(e, key, &v) &&
	       !strcmp(json_object_get_string(v), val);
}

/*
 * craft_rewrite() - @blob (@len bytes, eStargz) with the TOC entries of
 * regular file @path ("./" prefixed as the vectors write it) changed by
 * @mode. Returns the new blob (malloc'd, *ret_len bytes) and its TOC digest
 * in *ret_toc_digest; NULL when anything fails.
 */
static uint8_t *craft_rewrite(const uint8_t *blob, size_t len, const char *path,
			      enum craft_mode mode, size_t *ret_len,
			      struct lp_digest *ret_toc_digest)
{
	struct lp_blob *b = NULL;
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	json_object *toc = NULL, *ents, *e;
	const char *js;
	const void *old_js;
	size_t old_len, js_len, tar_len, gz_len = 0, i, n, toc_off;
	uint8_t *tar = NULL, *gz = NULL, *out = NULL;
	bool in_file = false, found = false;

	if (lp_blob_new_mem(blob, len, "craft", &b) < 0 ||
	    lp_layer_open(b, NULL, &l, &err) < 0)
		goto out;
	toc_off = (size_t)lp_layer_footer(l)->toc_offset;
	old_js = lp_layer_toc_json(l, &old_len);
	toc = json_tokener_parse((const char *)old_js);
	if (!toc || !json_object_object_get_ex(toc, "entries", &ents))
		goto out;
	n = json_object_array_length(ents);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(ents, i);
		if (craft_is(e, "type", "reg"))
			in_file = craft_is(e, "name", path);
		else if (!craft_is(e, "type", "chunk"))
			in_file = false;
		if (!in_file)
			continue;
		found = true;
		json_object_object_del(e, "chunkDigest");
		if (mode == CRAFT_LIE)
			json_object_object_add(
				e, "digest",
				json_object_new_string(
					"sha256:0000000000000000000000000000000"
					"000000000000000000000000000000001"));
		if (mode == CRAFT_NONE)
			json_object_object_del(e, "digest");
	}
	if (!found)
		goto out;
	js = json_object_to_json_string_ext(
		toc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	js_len = strlen(js);
	lp_sha256(js, js_len, ret_toc_digest);
	/* header, JSON padded to a block, end of archive */
	tar_len = CRAFT_TAR_BLOCK +
		  (js_len + CRAFT_TAR_BLOCK - 1) / CRAFT_TAR_BLOCK *
			  CRAFT_TAR_BLOCK +
		  2 * CRAFT_TAR_BLOCK;
	tar = calloc(1, tar_len);
	if (!tar)
		goto out;
	craft_tar_header(tar, js_len);
	memcpy(tar + CRAFT_TAR_BLOCK, js, js_len);
	gz = craft_gzip(tar, tar_len, &gz_len);
	if (!gz)
		goto out;
	out = malloc(toc_off + gz_len + LP_FOOTER_ESTARGZ_SIZE);
	if (!out)
		goto out;
	memcpy(out, blob, toc_off);
	memcpy(out + toc_off, gz, gz_len);
	memcpy(out + toc_off + gz_len, blob + len - LP_FOOTER_ESTARGZ_SIZE,
	       LP_FOOTER_ESTARGZ_SIZE);
	*ret_len = toc_off + gz_len + LP_FOOTER_ESTARGZ_SIZE;
out:
	json_object_put(toc);
	free(tar);
	free(gz);
	lp_layer_free(l);
	lp_blob_unref(b);
	return out;
}

#endif /* CRAFT_TOC_H */
