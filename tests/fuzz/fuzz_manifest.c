// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: manifest/index parsing (lp_reg_manifest_parse) and platform
 * selection. The first byte picks the Content-Type hint; every accessor is
 * walked on success so that borrowed strings are touched.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lp_registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hints[] = {
		NULL,
		"",
		LP_REG_MT_OCI_MANIFEST,
		LP_REG_MT_OCI_INDEX,
		LP_REG_MT_DOCKER_MANIFEST,
		LP_REG_MT_DOCKER_LIST,
	};
	struct lp_reg_manifest *m = NULL;
	const struct lp_reg_desc *d;
	size_t i, j, len;
	volatile size_t sink = 0;

	if (!size)
		return 0;
	if (lp_reg_manifest_parse(
		    data + 1, size - 1,
		    hints[data[0] % (sizeof(hints) / sizeof(hints[0]))],
		    &m) < 0)
		return 0;
	lp_reg_manifest_raw(m, &len);
	sink += len + strlen(lp_reg_manifest_media_type(m));
	if (lp_reg_manifest_config(m))
		sink += strlen(lp_reg_manifest_config(m)->media_type);
	for (i = 0; i < lp_reg_manifest_count(m); i++) {
		d = lp_reg_manifest_layer(m, i);
		sink += strlen(d->media_type) + strlen(d->platform.os) +
			strlen(d->platform.arch) + strlen(d->platform.variant);
		for (j = 0; j < d->n_annotations; j++)
			sink += strlen(d->annotations[j].key) +
				strlen(d->annotations[j].value);
		lp_reg_desc_annotation(
			d, "containerd.io/snapshot/stargz/toc.digest");
	}
	if (lp_reg_manifest_is_index(m)) {
		lp_reg_index_select(m, "linux/amd64", &d);
		lp_reg_index_select(m, "linux/arm64/v8", &d);
		lp_reg_index_select(m, "linux/arm/v7", &d);
	}
	lp_reg_manifest_free(m);
	return (int)(sink & 0);
}
