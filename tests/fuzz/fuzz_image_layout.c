// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: an OCI layout's index.json as image/ reads and rewrites it
 * (store.c). The input after the first byte becomes DIR/index.json; then
 * lp_img_store_get_top() picks an image from it (bit 0 of the first byte:
 * by the tag "t" or without a tag), and lp_img_store_put_tag() adds a
 * manifest under the tag "new" (bit 1: or replaces the untagged entries),
 * which parses the existing index.json with image/'s own code to keep the
 * other entries. After a successful put_tag the new index.json must be an
 * object whose "manifests" array holds an entry for the new tag: anything
 * else aborts.
 *
 * The layout directory is made once per process (mkdtemp) and left for the
 * system's temporary-file cleanup: a fuzz run has no end to hook.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lp_image.h"
#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char new_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":"
	"\"application/vnd.oci.image.manifest.v1+json\",\"config\":{"
	"\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
	"\"digest\":\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e83"
	"10c060f61caaff8a\",\"size\":2},\"layers\":[]}";

static const char *layout_dir(void)
{
	static char dir[] = "/tmp/lp-fuzz-image-layout.XXXXXX";
	static bool made;

	if (!made) {
		if (!mkdtemp(dir))
			abort();
		made = true;
	}
	return dir;
}

/* the rewritten index.json names the tag @tag (or has an untagged entry) */
static bool index_has(const char *path, const char *tag)
{
	json_object *root = json_object_from_file(path), *ms, *e, *a, *n;
	bool found = false;
	size_t i;

	if (!root || !json_object_object_get_ex(root, "manifests", &ms) ||
	    !json_object_is_type(ms, json_type_array))
		goto out;
	for (i = 0; i < json_object_array_length(ms); i++) {
		e = json_object_array_get_idx(ms, i);
		a = NULL;
		n = NULL;
		if (json_object_object_get_ex(e, "annotations", &a))
			json_object_object_get_ex(a, LP_IMAGE_ANN_REF_NAME, &n);
		if (tag ? n && !strcmp(json_object_get_string(n), tag) : !n)
			found = true;
	}
out:
	json_object_put(root);
	return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = layout_dir(), *tag;
	struct lp_img_store *st = NULL;
	struct lp_reg_manifest *m = NULL;
	char path[4200], spec[4200];
	struct lp_err err;
	FILE *f;

	if (!size)
		return 0;
	snprintf(path, sizeof(path), "%s/index.json", dir);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (fwrite(data + 1, 1, size - 1, f) != size - 1)
		abort();
	fclose(f);

	/* reading: pick the image by tag or as the only one */
	lp_err_clear(&err);
	snprintf(spec, sizeof(spec), "oci:%s%s", dir, data[0] & 1 ? ":t" : "");
	if (lp_img_store_open(spec, NULL, false, &st, &err) < 0)
		abort();
	if (lp_img_store_get_top(st, &m, &err) == 0)
		lp_reg_manifest_free(m);
	lp_img_store_free(st);

	/* rewriting: other entries kept, the new one added */
	tag = data[0] & 2 ? NULL : "new";
	snprintf(spec, sizeof(spec), "oci:%s%s%s", dir, tag ? ":" : "",
		 tag ? tag : "");
	if (lp_img_store_open(spec, NULL, true, &st, &err) < 0)
		abort();
	lp_err_clear(&err);
	if (lp_img_store_put_tag(st, LP_REG_MT_OCI_MANIFEST, new_manifest,
				 strlen(new_manifest), NULL, &err) == 0 &&
	    !index_has(path, tag))
		abort();
	lp_img_store_free(st);
	return 0;
}
