/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image-level conversion: read an image (a registry reference or an OCI image
 * layout "oci:DIR[:TAG]"), convert every layer to eStargz or zstd:chunked
 * with lp_convert_layer(), rewrite the config's rootfs.diff_ids, and write
 * OCI manifests whose layer descriptors carry the TOC digest and size
 * annotations (and the zstd:chunked manifest annotations) to a destination
 * of either kind. The analogue of `nerdctl image convert --estargz`.
 *
 * Safety: every source byte is checked against its descriptor's digest and
 * size before the result is used; nothing is written to the destination
 * until every layer has converted, and the tag (registry) or index.json
 * (OCI layout, written to a temporary file and renamed) comes last. A failed
 * conversion leaves at most unreferenced blobs behind, never a tag.
 *
 * Threads: lp_image_convert() runs up to @jobs layers at once on threads of
 * its own; the progress callback is called on the caller's thread only.
 */
#ifndef LP_IMAGE_H
#define LP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_convert.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_prio.h"
#include "lp_registry.h"

#define LP_IMAGE_CONFIG_MAX (8 * 1024 * 1024) /* bytes of an image config */
#define LP_IMAGE_INDEX_JSON_MAX LP_REG_MANIFEST_MAX /* an OCI index.json */
#define LP_IMAGE_JOBS_MAX 64 /* layers converted at once */

/* Annotations on the layer descriptors this module writes (DESIGN.md §2). */
#define LP_IMAGE_ANN_TOC_DIGEST "containerd.io/snapshot/stargz/toc.digest"
#define LP_IMAGE_ANN_UNCOMPRESSED_SIZE "io.containers.estargz.uncompressed-size"
#define LP_IMAGE_ANN_ZSTD_CHECKSUM \
	"io.containers.zstd-chunked.manifest-checksum"
#define LP_IMAGE_ANN_ZSTD_POSITION \
	"io.containers.zstd-chunked.manifest-position"
#define LP_IMAGE_ANN_REF_NAME "org.opencontainers.image.ref.name"

/* ---- prioritised files ---------------------------------------------- */

/*
 * Lists are read by format/'s lp_prio_load() (lp_prio.h). Image conversion
 * hands each layer the paths that name it (by the source layer's digest or
 * diff-id, or by index, 0 = base) plus those that name no layer.
 */
_Static_assert(LP_PRIO_MAX_LAYERS == LP_REG_LAYERS_MAX,
	       "a prioritised list's layer_index bound is the manifest's");

/* ---- progress ------------------------------------------------------- */

enum lp_image_layer_state {
	LP_IMAGE_LAYER_WAITING,
	LP_IMAGE_LAYER_RUNNING,
	LP_IMAGE_LAYER_CONVERTED,
	LP_IMAGE_LAYER_REUSED, /* already in the wanted format: copied */
	LP_IMAGE_LAYER_FAILED,
};

struct lp_image_layer_progress {
	char digest[LP_DIGEST_STR_LEN + 1]; /* the source layer */
	enum lp_image_layer_state state;
	uint64_t size_in; /* source blob size */
	uint64_t bytes_in; /* source bytes read so far */
	uint64_t bytes_out; /* output bytes written so far (or final) */
	double seconds; /* since this layer started; final when done */
};

enum lp_image_phase {
	LP_IMAGE_PHASE_RESOLVE, /* manifests and configs */
	LP_IMAGE_PHASE_CONVERT,
	LP_IMAGE_PHASE_PUSH, /* writing blobs, manifests, the tag */
	LP_IMAGE_PHASE_DONE,
};

struct lp_image_progress {
	enum lp_image_phase phase;
	size_t n_layers; /* distinct source layers */
	const struct lp_image_layer_progress *layers; /* borrowed, n_layers */
	double seconds; /* since lp_image_convert() started */
};

/*
 * Called on the caller's thread a few times a second while layers convert,
 * and at every phase change. @p is only valid during the call.
 */
typedef void (*lp_image_progress_fn)(void *ctx,
				     const struct lp_image_progress *p);

/* ---- conversion ----------------------------------------------------- */

struct lp_image_opts {
	const char *src; /* registry reference or "oci:DIR[:TAG]" */
	const char *dst; /* same forms; a registry DST needs a tag */
	struct lp_convert_opts convert; /* format, chunk size, level; threads
					   0: the CPUs shared between jobs */
	const struct lp_prio_list *prio; /* NULL: none */
	const char *platform; /* "os/arch[/variant]"; NULL: the host's */
	bool all_platforms; /* every platform of an index; wins over above */
	unsigned int jobs; /* layers at once; 0: 2 */
	const char *tmpdir; /* NULL: $TMPDIR, else /var/tmp */
	struct lp_reg_opts reg; /* client options (TLS, insecure hosts) */
	lp_image_progress_fn progress; /* NULL: none */
	void *progress_ctx;
	/* convert layers already in the wanted format too, instead of copying
	   them (layers given prioritised paths always are) */
	bool reconvert;
};

/* lp_image_opts_init() - defaults (and lp_convert_opts_init/lp_reg_opts_init). */
void lp_image_opts_init(struct lp_image_opts *o);

struct lp_image_result {
	size_t n_platforms; /* image manifests written */
	size_t n_layers; /* distinct layers */
	size_t n_converted, n_reused;
	uint64_t bytes_before; /* sum of the source layer blob sizes */
	uint64_t bytes_after; /* sum of the output layer blob sizes */
	uint64_t bytes_uncompressed; /* sum of the output diff sizes */
	double seconds;
	struct lp_digest digest; /* of the manifest or index DST now names */
	const char *media_type; /* its media type (static string) */
};

/*
 * lp_image_convert() - convert @o->src to @o->dst as described at the top of
 * this file. Fills @ret_res on success. Returns 0; -ENOENT (no such image,
 * blob or platform), -EINVAL (a layer that is not a tar stream, a malformed
 * config, a bad reference), -EBADMSG (a digest or size that does not match
 * its descriptor), -EOPNOTSUPP (media types it cannot convert), -EPROTO,
 * -EACCES, -EFBIG, or an I/O -errno. @err names the image, layer and reason.
 */
int lp_image_convert(const struct lp_image_opts *o,
		     struct lp_image_result *ret_res, struct lp_err *err);

#endif /* LP_IMAGE_H */
