// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull index ...`: seekable indexes of unconverted gzip layers
 * (docs/cli.md, docs/format.md "gzip index"). `index IMAGE-REF` builds one
 * per gzip layer and pushes them as an OCI artifact that refers to the image
 * manifest (or writes them to a directory); `index build` and `index
 * inspect` work on local files; `index extract` and `index cat` read an
 * image's layer from the registry by random access through its index, with
 * every span and every served file's tar header checked. Thin adapters over
 * converter/lp_indexer.h, format/lp_index.h and registry/.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cmd.h"
#include "lp_image.h"
#include "lp_index.h"
#include "lp_index_sig.h"
#include "lp_indexer.h"
#include "lp_io.h"
#include "lp_registry.h"
#include "lp_snapshotter.h" /* LP_SNAP_INDEX_SUFFIX: the layout it reads */

#define EMPTY_CONFIG "{}"
#define EMPTY_CONFIG_MT "application/vnd.oci.empty.v1+json"
#define READ_PIECE_MIN (64 * 1024)
#define READ_PIECES 8 /* a file is read in about this many pieces */
#define READ_PIECE_MAX (8 * 1024 * 1024)
#define CAT_BUF (1024 * 1024)

/* a layer indexed earlier in this run (another platform shares it): its
 * index (the uncompressed bytes' digest) and the artifact layer that
 * carries it (digest and size as pushed) */
struct done_layer {
	struct lp_digest layer, index, wire;
	uint64_t wire_size;
};

struct index_opts {
	struct done_layer *done; /* --all-platforms: built once per layer */
	size_t nr_done, cap_done;
	bool plain_http, all_platforms;
	/* --uncompressed: push indexes as LP_INDEX_MEDIA_TYPE (nodes older
	 * than the gzip transport), else LP_INDEX_MEDIA_TYPE_GZIP */
	enum lp_index_transport transport;
	const char *platform, *output, *index_file, *index_dir;
	const char *sign_key; /* --sign-key FILE */
	const char *hosts_arg; /* --registry-config-dir; NULL: not given */
	const char *hosts_dir; /* what the client gets */
	struct lp_index_signer *signer; /* loaded from it */
	uint64_t span_size;
	uint64_t grain_size; /* --grain-size; 0: no grain digests */
	unsigned long seed;
	const char *hosts[2];
};

static const struct option index_long_opts[] = {
	{ "plain-http", no_argument, NULL, 'P' },
	{ "platform", required_argument, NULL, 'p' },
	{ "all-platforms", no_argument, NULL, 'a' },
	{ "output", required_argument, NULL, 'o' },
	{ "span-size", required_argument, NULL, 's' },
	{ "grain-size", required_argument, NULL, 'g' },
	{ "index", required_argument, NULL, 'i' },
	{ "index-dir", required_argument, NULL, 'd' },
	{ "seed", required_argument, NULL, 'S' },
	{ "sign-key", required_argument, NULL, 'K' },
	{ "registry-config-dir", required_argument, NULL, 'R' },
	{ "uncompressed", no_argument, NULL, 'U' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char index_usage[] =
	"usage: lazypull index [--plain-http] [--platform P | --all-platforms]\n"
	"                      [--output DIR] [--span-size N] [--grain-size N]\n"
	"                      [--sign-key KEY.pem] [--registry-config-dir DIR]\n"
	"                      [--uncompressed] IMAGE-REF\n"
	"       lazypull index build [--span-size N] [--grain-size N]\n"
	"                      LAYER.tar.gz OUT\n"
	"       lazypull index inspect [--files] INDEX\n"
	"       lazypull index extract [--plain-http] [--platform P]\n"
	"                      [--index FILE | --index-dir DIR] [--seed N]\n"
	"                      IMAGE-REF LAYER-DIGEST DIR\n"
	"       lazypull index verify [--plain-http] [--platform P]\n"
	"                      [--index FILE | --index-dir DIR]\n"
	"                      IMAGE-REF LAYER-DIGEST\n"
	"       lazypull index cat [--plain-http] [--platform P]\n"
	"                      [--index FILE | --index-dir DIR]\n"
	"                      IMAGE-REF LAYER-DIGEST PATH\n";

static int parse_opts(const char *cmd, int argc, char **argv,
		      struct index_opts *o)
{
	int c, idx;
	long v;

	memset(o, 0, sizeof(*o));
	o->span_size = LP_INDEX_DEFAULT_SPAN_SIZE;
	o->grain_size = LP_INDEX_GRAIN_DEFAULT;
	o->transport = LP_INDEX_TRANSPORT_GZIP;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", index_long_opts, &idx)) !=
	       -1) {
		switch (c) {
		case 'P':
			o->plain_http = true;
			break;
		case 'p':
			o->platform = optarg;
			break;
		case 'a':
			o->all_platforms = true;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'i':
			o->index_file = optarg;
			break;
		case 'd':
			o->index_dir = optarg;
			break;
		case 'K':
			o->sign_key = optarg;
			break;
		case 'R':
			o->hosts_arg = optarg;
			break;
		case 'U':
			o->transport = LP_INDEX_TRANSPORT_PLAIN;
			break;
		case 's':
			if (lp_cmd_parse_size(optarg, &o->span_size) < 0 ||
			    o->span_size < LP_INDEX_MIN_SPAN_SIZE ||
			    o->span_size > LP_INDEX_MAX_SPAN_SIZE)
				return lp_cmd_usage_error(
					cmd, "--span-size must be 64K..64M");
			break;
		case 'g':
			if (lp_cmd_parse_size(optarg, &o->grain_size) < 0 ||
			    (o->grain_size &&
			     (o->grain_size > LP_INDEX_GRAIN_MAX ||
			      !lp_index_grain_size_ok(
				      (uint32_t)o->grain_size))))
				return lp_cmd_usage_error(
					cmd,
					"--grain-size must be 0 or a power "
					"of two in 4K..1M");
			break;
		case 'S':
			if (lp_cmd_parse_int(optarg, 0, LONG_MAX, &v) < 0)
				return lp_cmd_usage_error(cmd, "bad --seed");
			o->seed = (unsigned long)v;
			break;
		case 'h':
			fputs(index_usage, stdout);
			exit(LP_EXIT_OK);
		default:
			return lp_cmd_usage_error(cmd, "bad option");
		}
	}
	if (o->platform && o->all_platforms)
		return lp_cmd_usage_error(
			cmd,
			"--platform and --all-platforms exclude each other");
	if (o->index_file && o->index_dir)
		return lp_cmd_usage_error(
			cmd, "--index and --index-dir exclude each other");
	return lp_cmd_registry_config_dir(cmd, o->hosts_arg, &o->hosts_dir);
}

/* a registry client for @ref (plain HTTP to its host with --plain-http) */
static int open_reg(struct index_opts *o, const char *spec,
		    struct lp_reg_ref *ref, struct lp_reg **ret_reg)
{
	struct lp_reg_opts ro;
	int r;

	r = lp_reg_ref_parse(spec, ref);
	if (r < 0) {
		fprintf(stderr, "lazypull: %s: bad image reference\n", spec);
		return r;
	}
	lp_reg_opts_init(&ro);
	if (o->plain_http) {
		o->hosts[0] = ref->host;
		ro.insecure_hosts = o->hosts;
	}
	ro.platform = o->platform;
	ro.registry_config_dir = o->hosts_dir;
	r = lp_reg_new(&ro, ret_reg);
	if (r < 0)
		fprintf(stderr, "lazypull: registry client: %s\n",
			strerror(-r));
	return r;
}

static bool is_gzip_layer(const struct lp_reg_desc *d)
{
	const char *mt = d->media_type ? d->media_type : "";
	size_t n = strlen(mt);

	return (n > 5 && !strcmp(mt + n - 5, "+gzip")) ||
	       (n > 5 && !strcmp(mt + n - 5, ".gzip"));
}

/* an unlinked temporary file in $TMPDIR (or /var/tmp): its descriptor or
 * -errno */
static int tmp_fd(void)
{
	const char *dir = getenv("TMPDIR");

	return lp_file_open_unlinked(dir && *dir ? dir : "/var/tmp",
				     "lazypull-index");
}

/* @data into DIR/NAME, atomically (lp_file_write_atomic) */
static int write_file_atomic(const char *dir, const char *name,
			     const void *data, size_t len)
{
	char dst[PATH_MAX];

	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	return lp_file_write_atomic(dst, data, len, 0644);
}

static void index_name(const struct lp_digest *layer, char *out, size_t size)
{
	char ds[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(layer, ds);
	snprintf(out, size, "%s%s", ds + 7, LP_SNAP_INDEX_SUFFIX);
}

/* the line of layer @layer's index @id; with @wire, the blob of @wire_size
 * bytes that carries it in the registry */
static void print_result(const struct lp_digest *layer,
			 const struct lp_digest *index,
			 const struct lp_index_build_result *res,
			 const struct lp_digest *wire, uint64_t wire_size)
{
	char ls[LP_DIGEST_STR_LEN + 1], is[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(layer, ls);
	lp_digest_format(index, is);
	printf("layer=%s index=%s layer-size=%llu uncompressed=%llu "
	       "index-size=%llu ratio=%.2f%% checkpoints=%zu files=%zu "
	       "seconds=%.3f cpu-seconds=%.3f mb-per-cpu-s=%.1f",
	       ls, is, (unsigned long long)res->blob_size,
	       (unsigned long long)res->usize,
	       (unsigned long long)res->index_size,
	       100.0 * (double)res->index_size / (double)res->blob_size,
	       res->nr_checkpoints, res->nr_files, res->seconds,
	       res->cpu_seconds,
	       res->cpu_seconds > 0 ?
		       (double)res->blob_size / 1e6 / res->cpu_seconds :
		       0.0);
	if (wire) {
		lp_digest_format(wire, is);
		printf(" pushed=%s pushed-size=%llu", is,
		       (unsigned long long)wire_size);
	}
	putchar('\n');
}

/* the artifact's descriptor of the blob @wire (@size bytes) that carries
 * the index of layer @layer by transport @t */
static json_object *index_desc(const struct lp_digest *wire, uint64_t size,
			       enum lp_index_transport t,
			       const struct lp_digest *layer)
{
	json_object *d = json_object_new_object(), *ann;
	char ds[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(wire, ds);
	json_object_object_add(
		d, "mediaType",
		json_object_new_string(t == LP_INDEX_TRANSPORT_GZIP ?
					       LP_INDEX_MEDIA_TYPE_GZIP :
					       LP_INDEX_MEDIA_TYPE));
	json_object_object_add(d, "digest", json_object_new_string(ds));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	ann = json_object_new_object();
	lp_digest_format(layer, ds);
	json_object_object_add(ann, LP_INDEX_ANN_LAYER,
			       json_object_new_string(ds));
	json_object_object_add(d, "annotations", ann);
	return d;
}

static const struct done_layer *find_done(const struct index_opts *o,
					  const struct lp_digest *layer)
{
	size_t i;

	for (i = 0; i < o->nr_done; i++)
		if (lp_digest_equal(&o->done[i].layer, layer))
			return &o->done[i];
	return NULL;
}

/* layer @n of the statement to sign: @layer indexed by @index */
static int add_signed(struct lp_index_sig_layer **v, size_t *cap, size_t *n,
		      const struct lp_digest *layer,
		      const struct lp_digest *index)
{
	size_t i;

	/* a layer listed twice (BuildKit's empty layer) is one statement
	 * line: it has one index (find_done()), and the grammar refuses
	 * a layer named twice */
	for (i = 0; i < *n; i++)
		if (lp_digest_equal(&(*v)[i].layer, layer))
			return 0;
	if (lp_grow_array((void **)v, cap, *n + 1, sizeof(**v)) < 0)
		return -ENOMEM;
	(*v)[*n].layer = *layer;
	(*v)[*n].index = *index;
	(*n)++;
	return 0;
}

/* the annotations that carry signature @sig (docs/format.md) */
static json_object *sig_annotations(const struct lp_index_sig_strings *sig)
{
	json_object *ann = json_object_new_object();

	json_object_object_add(ann, LP_INDEX_SIG_ANN_STATEMENT,
			       json_object_new_string(sig->statement));
	json_object_object_add(ann, LP_INDEX_SIG_ANN_SIGNATURE,
			       json_object_new_string(sig->signature));
	json_object_object_add(ann, LP_INDEX_SIG_ANN_KEY,
			       json_object_new_string(sig->key));
	return ann;
}

/* DIR/<manifest hex>.gzidx.sig: {"annotations": {...}} of @sig */
static int write_sidecar(const char *dir, const struct lp_digest *manifest,
			 const struct lp_index_sig_strings *sig,
			 struct lp_err *err)
{
	json_object *o = json_object_new_object();
	char ds[LP_DIGEST_STR_LEN + 1], name[LP_DIGEST_STR_LEN + 16];
	const char *json;
	int r;

	json_object_object_add(o, "annotations", sig_annotations(sig));
	json = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	lp_digest_format(manifest, ds);
	snprintf(name, sizeof(name), "%s" LP_INDEX_SIG_SUFFIX, ds + 7);
	r = write_file_atomic(dir, name, json, strlen(json));
	if (r < 0)
		lp_err_set(err, r, "%s/%s: %s", dir, name, strerror(-r));
	else
		printf("manifest=%s signature=%s/%s key=%s\n", ds, dir, name,
		       sig->key);
	json_object_put(o);
	return r;
}

/* index every gzip layer of image manifest @m; push or write them */
static int index_manifest(struct index_opts *o, struct lp_reg *reg,
			  const struct lp_reg_ref *ref,
			  const struct lp_reg_manifest *m)
{
	json_object *layers = json_object_new_array(), *man = NULL, *d;
	struct lp_index_sig_layer *signed_layers = NULL;
	struct lp_index_sig_strings sig = { 0 };
	size_t cap_signed = 0;
	struct lp_err err = { 0 };
	struct lp_buf buf, wire;
	struct lp_digest cfg_d, art_d;
	char ds[LP_DIGEST_STR_LEN + 1], name[LP_DIGEST_STR_LEN + 16];
	const char *json;
	size_t i, n = 0, raw_len;
	int r = 0, fd = -1;

	lp_buf_init(&buf, LP_INDEX_MAX_SIZE);
	/* deflate's worst case: a few bytes per 16 KiB stored block */
	lp_buf_init(&wire, LP_INDEX_MAX_SIZE + LP_MIB);
	(void)lp_reg_manifest_raw(m, &raw_len);
	for (i = 0; i < lp_reg_manifest_count(m) && r == 0; i++) {
		const struct lp_reg_desc *l = lp_reg_manifest_layer(m, i);
		struct lp_index_build_result res;
		struct lp_digest id, wd;

		lp_digest_format(&l->digest, ds);
		if (!is_gzip_layer(l)) {
			printf("layer=%s skipped=not-gzip (%s)\n", ds,
			       l->media_type);
			continue;
		}
		if (find_done(o, &l->digest)) {
			const struct done_layer *dl = find_done(o, &l->digest);
			char is[LP_DIGEST_STR_LEN + 1];

			lp_digest_format(&dl->index, is);
			printf("layer=%s index=%s reused=1\n", ds, is);
			json_object_array_add(
				layers, index_desc(&dl->wire, dl->wire_size,
						   o->transport, &l->digest));
			r = add_signed(&signed_layers, &cap_signed, &n,
				       &l->digest, &dl->index);
			continue;
		}
		fd = tmp_fd();
		if (fd < 0) {
			r = lp_err_set(&err, fd, "temporary file: %s",
				       strerror(-fd));
			break;
		}
		r = lp_reg_fetch_blob(reg, ref, &l->digest, l->size, fd, &err);
		if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
			r = -errno;
		lp_buf_reset(&buf);
		if (r == 0)
			r = lp_index_build(fd, o->span_size,
					   (uint32_t)o->grain_size, &l->digest,
					   &buf, &res, &err);
		if (r < 0) {
			lp_err_set(&err, r, "layer %s: %s", ds,
				   lp_err_str(&err, r));
			break;
		}
		lp_sha256(buf.data, buf.len, &id);
		if (o->output) {
			index_name(&l->digest, name, sizeof(name));
			r = write_file_atomic(o->output, name, buf.data,
					      buf.len);
			if (r < 0)
				lp_err_set(&err, r, "%s/%s: %s", o->output,
					   name, strerror(-r));
		} else {
			/* the signature and the nodes name the index by
			 * @id; the registry knows the blob that carries it */
			lp_buf_reset(&wire);
			r = lp_index_transport_encode(o->transport, buf.data,
						      buf.len, &wire);
			if (r < 0)
				lp_err_set(&err, r, "layer %s: its index: %s",
					   ds, strerror(-r));
			lp_sha256(wire.data, wire.len, &wd);
			close(fd);
			fd = r < 0 ? -1 : tmp_fd();
			if (r == 0 && fd < 0)
				r = fd;
			if (r == 0)
				r = lp_write_all(fd, wire.data, wire.len);
			if (r == 0)
				r = lp_reg_push_blob(reg, ref, &wd, wire.len,
						     fd, NULL, &err);
		}
		close(fd);
		fd = -1;
		if (r < 0)
			break;
		print_result(&l->digest, &id, &res, o->output ? NULL : &wd,
			     wire.len);
		if (!o->output)
			json_object_array_add(layers, index_desc(&wd, wire.len,
								 o->transport,
								 &l->digest));
		r = add_signed(&signed_layers, &cap_signed, &n, &l->digest,
			       &id);
		if (r < 0)
			break;
		if (lp_grow_array((void **)&o->done, &o->cap_done,
				  o->nr_done + 1, sizeof(*o->done)) == 0)
			o->done[o->nr_done++] = (struct done_layer){
				.layer = l->digest,
				.index = id,
				.wire = o->output ? id : wd,
				.wire_size = o->output ? buf.len : wire.len,
			};
	}
	if (r == 0 && o->signer && n > 0) {
		r = lp_index_sign(o->signer, lp_reg_manifest_digest(m),
				  signed_layers, n, &sig, &err);
		if (r == 0 && o->output)
			r = write_sidecar(o->output, lp_reg_manifest_digest(m),
					  &sig, &err);
	}
	if (r < 0 || o->output || n == 0)
		goto out;
	/* the artifact: an OCI manifest whose subject is the image */
	fd = tmp_fd();
	if (fd < 0 || lp_write_all(fd, EMPTY_CONFIG, 2) < 0) {
		r = lp_err_set(&err, -EIO, "temporary file");
		goto out;
	}
	lp_sha256(EMPTY_CONFIG, 2, &cfg_d);
	r = lp_reg_push_blob(reg, ref, &cfg_d, 2, fd, NULL, &err);
	if (r < 0)
		goto out;
	man = json_object_new_object();
	json_object_object_add(man, "schemaVersion", json_object_new_int(2));
	json_object_object_add(man, "mediaType",
			       json_object_new_string(LP_REG_MT_OCI_MANIFEST));
	json_object_object_add(man, "artifactType",
			       json_object_new_string(LP_INDEX_ARTIFACT_TYPE));
	d = json_object_new_object();
	lp_digest_format(&cfg_d, ds);
	json_object_object_add(d, "mediaType",
			       json_object_new_string(EMPTY_CONFIG_MT));
	json_object_object_add(d, "digest", json_object_new_string(ds));
	json_object_object_add(d, "size", json_object_new_int(2));
	json_object_object_add(man, "config", d);
	json_object_object_add(man, "layers", json_object_get(layers));
	d = json_object_new_object();
	lp_digest_format(lp_reg_manifest_digest(m), ds);
	json_object_object_add(
		d, "mediaType",
		json_object_new_string(lp_reg_manifest_media_type(m)));
	json_object_object_add(d, "digest", json_object_new_string(ds));
	json_object_object_add(d, "size",
			       json_object_new_int64((int64_t)raw_len));
	json_object_object_add(man, "subject", d);
	if (sig.statement)
		json_object_object_add(man, "annotations",
				       sig_annotations(&sig));
	json = json_object_to_json_string_ext(
		man, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = lp_reg_push_referrer(reg, ref, lp_reg_manifest_digest(m),
				 LP_INDEX_ARTIFACT_TYPE, json, strlen(json),
				 &art_d, &err);
	if (r >= 0) {
		char as[LP_DIGEST_STR_LEN + 1];

		lp_digest_format(&art_d, as);
		printf("manifest=%s referrer=%s via=%s\n", ds, as,
		       r == 1 ? "referrers-api" : "referrers-tag");
		r = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	json_object_put(layers);
	json_object_put(man);
	lp_buf_release(&buf);
	lp_buf_release(&wire);
	lp_index_sig_strings_clear(&sig);
	free(signed_layers);
	if (r < 0)
		return lp_cmd_fail("index", &err, r);
	return 0;
}

static int cmd_index_image(int argc, char **argv)
{
	struct index_opts o;
	struct lp_reg *reg = NULL;
	struct lp_reg_manifest *m = NULL, *top = NULL;
	struct lp_reg_ref ref;
	struct lp_err err = { 0 };
	size_t i;
	int r;

	r = parse_opts("index", argc, argv, &o);
	if (r)
		return r;
	if (optind + 1 != argc)
		return lp_cmd_usage_error("index", "expected one IMAGE-REF");
	if (o.sign_key) {
		r = lp_index_signer_load(o.sign_key, &o.signer, &err);
		if (r < 0)
			return lp_cmd_fail("--sign-key", &err, r);
	}
	if (open_reg(&o, argv[optind], &ref, &reg) < 0) {
		lp_index_signer_free(o.signer);
		return LP_EXIT_FAIL;
	}
	if (!o.all_platforms) {
		r = lp_reg_manifest_fetch(reg, &ref, o.platform, &m, &err);
		if (r < 0) {
			r = lp_cmd_fail(argv[optind], &err, r);
			goto out;
		}
		r = index_manifest(&o, reg, &ref, m) ? LP_EXIT_FAIL : 0;
		goto out;
	}
	r = lp_reg_manifest_get(reg, &ref, &top, &err);
	if (r < 0) {
		r = lp_cmd_fail(argv[optind], &err, r);
		goto out;
	}
	if (!lp_reg_manifest_is_index(top)) {
		r = index_manifest(&o, reg, &ref, top) ? LP_EXIT_FAIL : 0;
		goto out;
	}
	for (i = 0; i < lp_reg_manifest_count(top) && r == 0; i++) {
		const struct lp_reg_desc *e = lp_reg_manifest_layer(top, i);
		struct lp_reg_ref eref = ref;

		if (!e->media_type ||
		    (strcmp(e->media_type, LP_REG_MT_OCI_MANIFEST) &&
		     strcmp(e->media_type, LP_REG_MT_DOCKER_MANIFEST)))
			continue;
		eref.has_digest = true;
		eref.digest = e->digest;
		r = lp_reg_manifest_get(reg, &eref, &m, &err);
		if (r < 0) {
			r = lp_cmd_fail(argv[optind], &err, r);
			break;
		}
		r = index_manifest(&o, reg, &eref, m) ? LP_EXIT_FAIL : 0;
		lp_reg_manifest_free(m);
		m = NULL;
	}
out:
	free(o.done);
	lp_index_signer_free(o.signer);
	lp_reg_manifest_free(m);
	lp_reg_manifest_free(top);
	lp_reg_free(reg);
	return r;
}

static int cmd_index_build(int argc, char **argv)
{
	struct index_opts o;
	struct lp_index_build_result res;
	struct lp_err err = { 0 };
	struct lp_buf buf;
	struct lp_digest id;
	int fd, r;

	r = parse_opts("index build", argc, argv, &o);
	if (r)
		return r;
	if (optind + 2 != argc)
		return lp_cmd_usage_error("index build",
					  "expected LAYER.tar.gz and OUT");
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lazypull: %s: %s\n", argv[optind],
			strerror(errno));
		return LP_EXIT_FAIL;
	}
	lp_buf_init(&buf, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, o.span_size, (uint32_t)o.grain_size, NULL, &buf,
			   &res, &err);
	close(fd);
	if (r < 0) {
		r = lp_cmd_fail(argv[optind], &err, r);
		goto out;
	}
	fd = open(argv[optind + 1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		  0644);
	if (fd < 0 || lp_write_all(fd, buf.data, buf.len) < 0) {
		fprintf(stderr, "lazypull: %s: %s\n", argv[optind + 1],
			strerror(errno));
		if (fd >= 0)
			close(fd);
		r = LP_EXIT_FAIL;
		goto out;
	}
	close(fd);
	lp_sha256(buf.data, buf.len, &id);
	print_result(&res.blob_digest, &id, &res, NULL, 0);
	r = 0;
out:
	lp_buf_release(&buf);
	return r;
}

int lp_cmd_load_file(const char *path, size_t limit, uint8_t **ret,
		     size_t *ret_len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > limit) {
		close(fd);
		return -EFBIG;
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, p + got, (size_t)st.st_size - got);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(p);
		return r;
	}
	*ret = p;
	*ret_len = got;
	return 0;
}

static int parse_index_file(const char *path, struct lp_index **ret)
{
	struct lp_err err = { 0 };
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	r = lp_cmd_load_file(path, LP_INDEX_MAX_SIZE, &data, &len);
	if (r < 0) {
		fprintf(stderr, "lazypull: %s: %s\n", path, strerror(-r));
		return r;
	}
	r = lp_index_parse(data, len, ret, &err);
	free(data);
	if (r < 0)
		lp_cmd_fail(path, &err, r);
	return r;
}

static int cmd_index_inspect(int argc, char **argv)
{
	struct lp_index *ix = NULL;
	char ds[LP_DIGEST_STR_LEN + 1];
	bool files = false;
	size_t i, grains = 0;
	int a = 1;

	if (a < argc && !strcmp(argv[a], "--files")) {
		files = true;
		a++;
	}
	if (a + 1 != argc)
		return lp_cmd_usage_error("index inspect",
					  "expected one INDEX file");
	if (parse_index_file(argv[a], &ix) < 0)
		return LP_EXIT_FAIL;
	lp_digest_format(lp_index_blob_digest(ix), ds);
	for (i = 0; i < lp_index_nr_checkpoints(ix); i++)
		grains += lp_index_nr_grains(ix, i);
	printf("layer=%s layer-size=%llu uncompressed=%llu span-size=%u "
	       "checkpoints=%zu files=%zu grain-size=%u grains=%zu\n",
	       ds, (unsigned long long)lp_index_blob_size(ix),
	       (unsigned long long)lp_index_uncompressed_size(ix),
	       lp_index_span_size(ix), lp_index_nr_checkpoints(ix),
	       lp_index_nr_files(ix), lp_index_grain_size(ix), grains);
	for (i = 0; files && i < lp_index_nr_files(ix); i++) {
		const struct lp_index_file *f = lp_index_file(ix, i);

		printf("%c %04o %u:%u %llu %llu %llu %s%s%s\n", f->type,
		       f->mode, f->uid, f->gid, (unsigned long long)f->hdr_off,
		       (unsigned long long)f->data_off,
		       (unsigned long long)f->size, f->path,
		       f->link[0] ? " -> " : "", f->link);
	}
	lp_index_free(ix);
	return 0;
}

/* ---- reading a layer through its index -------------------------------- */

/*
 * The blob extract and cat read through: the registry blob with the last
 * few ranges kept in memory. Every read of a span asks for the same range,
 * so a file read in pieces, or the files of one span, fetch it once; the
 * counter says what really came from the registry.
 */
#define SPAN_CACHE_SLOTS 256
#define SPAN_CACHE_BYTES (256 * 1024 * 1024) /* at most this much kept */

struct span_slot {
	uint64_t off;
	size_t len;
	uint8_t *data; /* NULL: empty */
	uint64_t used; /* for LRU */
};

struct span_cache {
	struct lp_blob *inner;
	pthread_mutex_t lock;
	struct span_slot slot[SPAN_CACHE_SLOTS]; /* protected by lock */
	uint64_t clock; /* protected by lock */
	size_t bytes; /* in the slots; protected by lock */
	uint64_t fetched; /* bytes read from @inner; protected by lock */
};

/* empty slot @sl (NULL allowed); the lock is held */
static void evict(struct span_cache *c, struct span_slot *sl)
{
	if (!sl || !sl->data)
		return;
	free(sl->data);
	sl->data = NULL;
	c->bytes -= sl->len;
	sl->used = 0;
}

static int cache_pread(void *ctx, void *buf, size_t len, uint64_t off,
		       struct lp_err *err)
{
	struct span_cache *c = ctx;
	struct span_slot *victim = &c->slot[0];
	uint8_t *copy = NULL;
	size_t i;
	int r;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < SPAN_CACHE_SLOTS; i++) {
		struct span_slot *sl = &c->slot[i];

		if (sl->data && off >= sl->off && len <= sl->len &&
		    off - sl->off <= sl->len - len) {
			memcpy(buf, sl->data + (off - sl->off), len);
			sl->used = ++c->clock;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (sl->used < victim->used)
			victim = sl;
	}
	pthread_mutex_unlock(&c->lock);
	r = lp_blob_pread(c->inner, buf, len, off, err);
	if (r < 0)
		return r;
	copy = len <= SPAN_CACHE_BYTES ? malloc(len ? len : 1) : NULL;
	pthread_mutex_lock(&c->lock);
	c->fetched += len;
	if (copy) {
		memcpy(copy, buf, len);
		evict(c, victim);
		/* room for it: drop the least recently used */
		while (c->bytes + len > SPAN_CACHE_BYTES) {
			victim = NULL;
			for (i = 0; i < SPAN_CACHE_SLOTS; i++)
				if (c->slot[i].data &&
				    (!victim || c->slot[i].used < victim->used))
					victim = &c->slot[i];
			evict(c, victim);
		}
		for (i = 0; i < SPAN_CACHE_SLOTS; i++)
			if (!c->slot[i].data)
				victim = &c->slot[i];
		victim->data = copy;
		victim->off = off;
		victim->len = len;
		victim->used = ++c->clock;
		c->bytes += len;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void cache_close(void *ctx)
{
	struct span_cache *c = ctx;
	size_t i;

	for (i = 0; i < SPAN_CACHE_SLOTS; i++)
		free(c->slot[i].data);
	lp_blob_unref(c->inner);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct lp_blob_ops cache_ops = {
	.pread = cache_pread,
	.close = cache_close,
};

/* @inner (a reference is taken) behind a span cache; *ret_c is borrowed
 * from the blob, valid while it lives */
static int span_cache_new(struct lp_blob *inner, struct lp_blob **ret_blob,
			  struct span_cache **ret_c)
{
	struct span_cache *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->inner = lp_blob_ref(inner);
	r = lp_blob_new(&cache_ops, c, lp_blob_size(inner), lp_blob_name(inner),
			ret_blob);
	if (r < 0) {
		cache_close(c);
		return r;
	}
	*ret_c = c;
	return 0;
}

static uint64_t span_cache_fetched(struct span_cache *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->lock);
	n = c->fetched;
	pthread_mutex_unlock(&c->lock);
	return n;
}

struct reader {
	struct span_cache *cache; /* borrowed from blob */
	struct lp_reg *reg;
	struct lp_reg_ref ref;
	struct lp_reg_manifest *m;
	struct lp_index *ix;
	struct lp_blob *blob;
	uint64_t index_bytes; /* index bytes fetched from the registry */
};

static void reader_close(struct reader *rd)
{
	lp_blob_unref(rd->blob);
	lp_index_free(rd->ix);
	lp_reg_manifest_free(rd->m);
	lp_reg_free(rd->reg);
}

/* the index of layer @layer from the image's referrers */
static int fetch_index(struct reader *rd, const struct lp_digest *layer,
		       struct lp_err *err)
{
	struct lp_reg_manifest *refs = NULL, *art = NULL;
	char ls[LP_DIGEST_STR_LEN + 1];
	void *data = NULL;
	uint8_t *index = NULL;
	size_t len = 0, index_len = 0, i, k;
	int r, t;

	lp_digest_format(layer, ls);
	r = lp_reg_referrers(rd->reg, &rd->ref, lp_reg_manifest_digest(rd->m),
			     LP_INDEX_ARTIFACT_TYPE, &refs, err);
	if (r < 0)
		return lp_err_set(err, r, "no referrers of the image: %s",
				  lp_err_str(err, r));
	r = -ENOENT;
	/* the newest first: an index pushed again is appended last */
	for (i = lp_reg_manifest_count(refs); i-- > 0 && r == -ENOENT;) {
		const struct lp_reg_desc *e = lp_reg_manifest_layer(refs, i);
		struct lp_reg_ref aref = rd->ref;

		aref.tag[0] = '\0';
		aref.has_digest = true;
		aref.digest = e->digest;
		if (lp_reg_manifest_get(rd->reg, &aref, &art, err) < 0) {
			lp_err_clear(err);
			continue;
		}
		for (k = 0; k < lp_reg_manifest_count(art); k++) {
			const struct lp_reg_desc *l =
				lp_reg_manifest_layer(art, k);
			const char *a =
				lp_reg_desc_annotation(l, LP_INDEX_ANN_LAYER);

			t = lp_index_transport_of(l->media_type);
			if (t < 0 || !a || strcmp(a, ls))
				continue;
			if (l->size > LP_INDEX_MAX_SIZE) {
				r = lp_err_set(err, -EFBIG,
					       "index of %llu bytes",
					       (unsigned long long)l->size);
				break;
			}
			r = lp_reg_fetch_blob_mem(rd->reg, &rd->ref, &l->digest,
						  LP_INDEX_MAX_SIZE, &data,
						  &len, err);
			if (r == 0) {
				rd->index_bytes += len;
				/* a gzip'ed one inflates under the same
				 * bound as a plain one */
				r = lp_index_transport_decode(
					(enum lp_index_transport)t, data, len,
					LP_INDEX_MAX_SIZE, &index, &index_len,
					err);
			}
			if (r == 0)
				r = lp_index_parse(index, index_len, &rd->ix,
						   err);
			break;
		}
		lp_reg_manifest_free(art);
		art = NULL;
	}
	lp_reg_manifest_free(refs);
	free(data);
	free(index);
	if (r == -ENOENT)
		r = lp_err_set(err, r,
			       "no gzip index of layer %s among the "
			       "image's referrers",
			       ls);
	return r;
}

static int reader_open(struct index_opts *o, const char *spec,
		       const char *layer_s, struct reader *rd)
{
	struct lp_err err = { 0 };
	struct lp_digest layer;
	const struct lp_reg_desc *l = NULL;
	size_t i;
	int r;

	memset(rd, 0, sizeof(*rd));
	if (lp_digest_parse(layer_s, &layer) < 0) {
		fprintf(stderr, "lazypull: %s: not a digest\n", layer_s);
		return -EINVAL;
	}
	r = open_reg(o, spec, &rd->ref, &rd->reg);
	if (r < 0)
		return r;
	r = lp_reg_manifest_fetch(rd->reg, &rd->ref, o->platform, &rd->m, &err);
	if (r < 0)
		return lp_cmd_fail(spec, &err, r) ? r : r;
	for (i = 0; i < lp_reg_manifest_count(rd->m); i++)
		if (lp_digest_equal(&lp_reg_manifest_layer(rd->m, i)->digest,
				    &layer))
			l = lp_reg_manifest_layer(rd->m, i);
	if (!l) {
		fprintf(stderr, "lazypull: %s: no layer %s\n", spec, layer_s);
		return -ENOENT;
	}
	if (o->index_file || o->index_dir) {
		char path[PATH_MAX], name[LP_DIGEST_STR_LEN + 16];

		if (o->index_dir) {
			index_name(&layer, name, sizeof(name));
			snprintf(path, sizeof(path), "%s/%s", o->index_dir,
				 name);
		}
		r = parse_index_file(o->index_file ? o->index_file : path,
				     &rd->ix);
		if (r < 0)
			return r;
	} else {
		r = fetch_index(rd, &layer, &err);
		if (r < 0) {
			lp_cmd_fail(layer_s, &err, r);
			return r;
		}
	}
	if (!lp_digest_equal(lp_index_blob_digest(rd->ix), &layer) ||
	    lp_index_blob_size(rd->ix) != l->size) {
		fprintf(stderr,
			"lazypull: %s: the index is of another blob (digest "
			"or size differs)\n",
			layer_s);
		return -EBADMSG;
	}
	{
		struct lp_blob *reg_blob = NULL;

		r = lp_reg_open_blob(rd->reg, &rd->ref, &layer, l->size,
				     &reg_blob);
		if (r == 0)
			r = span_cache_new(reg_blob, &rd->blob, &rd->cache);
		lp_blob_unref(reg_blob);
	}
	if (r < 0)
		fprintf(stderr, "lazypull: %s: %s\n", layer_s, strerror(-r));
	return r;
}

/* one pass over the whole layer: the header of every entry that is not a
 * regular file (their metadata is all the index serves of them) checked,
 * and every checkpoint passed, so every window compared */
static int check_other_headers(struct reader *rd,
			       struct lp_index_stream_stats *stats,
			       struct lp_err *err)
{
	struct lp_index_stream *s = NULL;
	struct lp_index_stream_stats st;
	uint8_t *hdr = NULL;
	size_t i;
	int r;

	hdr = malloc(LP_INDEX_MAX_HEADER);
	if (!hdr)
		return -ENOMEM;
	r = lp_index_stream_open(rd->ix, rd->blob, 0, &s, err);
	for (i = 0; i < lp_index_nr_files(rd->ix) && r == 0; i++) {
		const struct lp_index_file *f = lp_index_file(rd->ix, i);
		size_t hlen = (size_t)(f->data_off - f->hdr_off);

		if (f->type == '0')
			continue;
		r = lp_index_stream_skip(s, f->hdr_off - lp_index_stream_pos(s),
					 err);
		if (r == 0)
			r = lp_index_stream_read(s, hdr, hlen, err);
		if (r == 0)
			r = lp_index_check_header(rd->ix, i, hdr, hlen, err);
	}
	if (r == 0)
		r = lp_index_stream_skip(s,
					 lp_index_uncompressed_size(rd->ix) -
						 lp_index_stream_pos(s),
					 err);
	if (s) {
		lp_index_stream_stats(s, &st);
		stats->bytes_fetched += st.bytes_fetched;
		stats->spans += st.spans;
	}
	lp_index_stream_free(s);
	free(hdr);
	return r;
}

/* the parent directories of @path under @dir */
static int make_parents(int dirfd, const char *path)
{
	char tmp[LP_TOC_MAX_PATH + 1];
	char *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = strchr(tmp, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(dirfd, tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static unsigned long next_rand(unsigned long *s)
{
	*s = *s * 6364136223846793005UL + 1442695040888963407UL;
	return *s >> 33;
}

/* a regular file's bytes, read in pieces in a random order */
static int extract_reg(struct reader *rd, size_t i, int fd, unsigned long *seed,
		       struct lp_index_stream_stats *stats, struct lp_err *err)
{
	const struct lp_index_file *f = lp_index_file(rd->ix, i);
	uint64_t piece = lp_min_u64(
		lp_max_u64(READ_PIECE_MIN, f->size / READ_PIECES + 1),
		READ_PIECE_MAX);
	uint64_t n = f->size ? (f->size + piece - 1) / piece : 1, k;
	uint64_t *order = NULL;
	uint8_t *buf = NULL;
	int r = 0;

	order = calloc(n, sizeof(*order));
	buf = malloc(piece);
	if (!order || !buf) {
		r = -ENOMEM;
		goto out;
	}
	for (k = 0; k < n; k++)
		order[k] = k;
	for (k = n; k > 1; k--) {
		uint64_t j = next_rand(seed) % k, t = order[k - 1];

		order[k - 1] = order[j];
		order[j] = t;
	}
	for (k = 0; k < n && r == 0; k++) {
		uint64_t off = order[k] * piece;
		size_t len = (size_t)lp_min_u64(piece, f->size - off);

		r = lp_index_read_file(rd->ix, rd->blob, i, buf, len, off,
				       stats, err);
		if (r == 0 && len &&
		    pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			r = lp_err_set(err, -errno, "%s: write", f->path);
	}
out:
	free(order);
	free(buf);
	return r;
}

/* owners, mode, xattrs and mtime of entry @f under @dir (as root: owners
 * and trusted.* xattrs need it; elsewhere what the kernel allows) */
static int apply_meta(int dirfd, const char *dir, const struct lp_index_file *f,
		      struct lp_err *err)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { f->mtime, 0 } };
	char path[PATH_MAX];
	uint32_t k;

	if (f->type == '1')
		return 0; /* the target's inode, set on its own */
	if (geteuid() == 0 &&
	    fchownat(dirfd, f->path, f->uid, f->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return lp_err_set(err, -errno, "%s: chown: %s", f->path,
				  strerror(errno));
	if (f->type != '2' && fchmodat(dirfd, f->path, f->mode, 0) < 0)
		return lp_err_set(err, -errno, "%s: chmod: %s", f->path,
				  strerror(errno));
	if (snprintf(path, sizeof(path), "%s/%s", dir, f->path) >=
	    (int)sizeof(path))
		return lp_err_set(err, -ENAMETOOLONG, "%s: path too long",
				  f->path);
	for (k = 0; k < f->nr_xattrs; k++)
		if (lsetxattr(path, f->xattrs[k].name, f->xattrs[k].value,
			      f->xattrs[k].len, 0) < 0)
			return lp_err_set(err, -errno, "%s: xattr %s: %s",
					  f->path, f->xattrs[k].name,
					  strerror(errno));
	if (utimensat(dirfd, f->path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return lp_err_set(err, -errno, "%s: utimensat: %s", f->path,
				  strerror(errno));
	return 0;
}

/* entry @f when it is a link of @type ('1' hard, '2' symbolic) */
static int make_link(int dirfd, const struct lp_index_file *f, char type,
		     struct lp_err *err)
{
	int r;

	if (f->type != type)
		return 0;
	unlinkat(dirfd, f->path, 0);
	r = type == '2' ? symlinkat(f->link, dirfd, f->path) :
			  linkat(dirfd, f->link, dirfd, f->path, 0);
	if (r < 0)
		return lp_err_set(err, -errno, "%s -> %s: %s", f->path, f->link,
				  strerror(errno));
	return 0;
}

static int cmd_index_extract(int argc, char **argv)
{
	struct index_opts o;
	struct reader rd;
	struct lp_err err = { 0 };
	struct lp_index_stream_stats stats = { 0 };
	size_t i, n, *order = NULL;
	unsigned long seed;
	int dirfd = -1, r;

	r = parse_opts("index extract", argc, argv, &o);
	if (r)
		return r;
	if (optind + 3 != argc)
		return lp_cmd_usage_error(
			"index extract", "expected IMAGE-REF LAYER-DIGEST DIR");
	seed = o.seed;
	r = reader_open(&o, argv[optind], argv[optind + 1], &rd);
	if (r < 0)
		goto out;
	/* a new directory: nothing in it that the layer did not put there */
	if (mkdir(argv[optind + 2], 0755) < 0) {
		r = lp_err_set(&err, -errno,
			       "%s: %s (extract makes a new "
			       "directory)",
			       argv[optind + 2], strerror(errno));
		goto fail;
	}
	dirfd = open(argv[optind + 2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = lp_err_set(&err, -errno, "%s: %s", argv[optind + 2],
			       strerror(errno));
		goto fail;
	}
	r = check_other_headers(&rd, &stats, &err);
	if (r < 0)
		goto fail;
	n = lp_index_nr_files(rd.ix);
	order = calloc(n ? n : 1, sizeof(*order));
	if (!order) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; i > 1; i--) {
		size_t j = next_rand(&seed) % i, t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	/* directories and regular files (random order), then links */
	for (i = 0; i < n && r == 0; i++) {
		const struct lp_index_file *f = lp_index_file(rd.ix, order[i]);
		int fd;

		r = make_parents(dirfd, f->path);
		if (r < 0) {
			lp_err_set(&err, r, "%s: %s", f->path, strerror(-r));
			break;
		}
		if (f->type == '5') {
			if (mkdirat(dirfd, f->path, 0755) < 0 &&
			    errno != EEXIST)
				r = lp_err_set(&err, -errno, "%s: %s", f->path,
					       strerror(errno));
			continue;
		}
		if (f->type == '3' || f->type == '4' || f->type == '6') {
			mode_t m = f->type == '3' ? S_IFCHR :
				   f->type == '4' ? S_IFBLK :
						    S_IFIFO;

			unlinkat(dirfd, f->path, 0);
			if (mknodat(dirfd, f->path, m | 0600,
				    makedev(f->dev_major, f->dev_minor)) < 0)
				r = lp_err_set(&err, -errno, "%s: mknod: %s",
					       f->path, strerror(errno));
			continue;
		}
		if (f->type != '0')
			continue;
		unlinkat(dirfd, f->path, 0);
		fd = openat(dirfd, f->path,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				    O_NOFOLLOW,
			    0600);
		if (fd < 0) {
			r = lp_err_set(&err, -errno, "%s: %s", f->path,
				       strerror(errno));
			break;
		}
		r = extract_reg(&rd, order[i], fd, &seed, &stats, &err);
		if (r == 0 && fchmod(fd, (f->mode & 0777) | 0600) < 0)
			r = -errno;
		close(fd);
	}
	/* hardlinks before symlinks: no link target can then lead through a
	 * symlink of the layer, and a symlink cannot replace a directory an
	 * entry was written under (creating it fails) */
	for (i = 0; i < n && r == 0; i++)
		r = make_link(dirfd, lp_index_file(rd.ix, i), '1', &err);
	for (i = 0; i < n && r == 0; i++)
		r = make_link(dirfd, lp_index_file(rd.ix, i), '2', &err);
	for (i = 0; i < n && r == 0; i++)
		r = apply_meta(dirfd, argv[optind + 2], lp_index_file(rd.ix, i),
			       &err);
	if (r < 0)
		goto fail;
	printf("files=%zu fetched=%llu spans=%llu index-fetched=%llu "
	       "layer-size=%llu\n",
	       n, (unsigned long long)span_cache_fetched(rd.cache),
	       (unsigned long long)stats.spans,
	       (unsigned long long)rd.index_bytes,
	       (unsigned long long)lp_index_blob_size(rd.ix));
	goto out;
fail:
	lp_cmd_fail(argv[optind + 1], &err, r);
out:
	if (dirfd >= 0)
		close(dirfd);
	free(order);
	reader_close(&rd);
	return r < 0 ? LP_EXIT_FAIL : 0;
}

static int cmd_index_cat(int argc, char **argv)
{
	struct index_opts o;
	struct reader rd;
	struct lp_err err = { 0 };
	struct lp_index_stream_stats stats = { 0 };
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int r, i = -1;

	r = parse_opts("index cat", argc, argv, &o);
	if (r)
		return r;
	if (optind + 3 != argc)
		return lp_cmd_usage_error(
			"index cat", "expected IMAGE-REF LAYER-DIGEST PATH");
	r = reader_open(&o, argv[optind], argv[optind + 1], &rd);
	if (r < 0)
		goto out;
	i = lp_index_lookup(rd.ix, argv[optind + 2]);
	if (i >= 0 && lp_index_file(rd.ix, (size_t)i)->type == '1')
		i = lp_index_lookup(rd.ix,
				    lp_index_file(rd.ix, (size_t)i)->link);
	if (i < 0 || lp_index_file(rd.ix, (size_t)i)->type != '0') {
		r = lp_err_set(&err, -ENOENT, "%s: no regular file %s",
			       argv[optind + 1], argv[optind + 2]);
		goto fail;
	}
	buf = malloc(CAT_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto fail;
	}
	while (off < lp_index_file(rd.ix, (size_t)i)->size) {
		size_t len = (size_t)lp_min_u64(
			CAT_BUF, lp_index_file(rd.ix, (size_t)i)->size - off);

		r = lp_index_read_file(rd.ix, rd.blob, (size_t)i, buf, len, off,
				       &stats, &err);
		if (r < 0)
			goto fail;
		if (fwrite(buf, 1, len, stdout) != len) {
			r = lp_err_set(&err, -EIO, "stdout");
			goto fail;
		}
		off += len;
	}
	fflush(stdout);
	fprintf(stderr,
		"fetched=%llu spans=%llu index-fetched=%llu "
		"layer-size=%llu\n",
		(unsigned long long)span_cache_fetched(rd.cache),
		(unsigned long long)stats.spans,
		(unsigned long long)rd.index_bytes,
		(unsigned long long)lp_index_blob_size(rd.ix));
	goto out;
fail:
	lp_cmd_fail(argv[optind + 2], &err, r);
out:
	free(buf);
	reader_close(&rd);
	return r < 0 ? LP_EXIT_FAIL : 0;
}

/* rebuild the index from the whole layer (digest checked) and compare */
static int cmd_index_verify(int argc, char **argv)
{
	struct index_opts o;
	struct reader rd;
	struct lp_err err = { 0 };
	struct lp_index_build_result res;
	struct lp_buf mine, theirs;
	struct lp_digest layer;
	int fd = -1, r;

	lp_buf_init(&mine, LP_INDEX_MAX_SIZE);
	lp_buf_init(&theirs, LP_INDEX_MAX_SIZE);
	r = parse_opts("index verify", argc, argv, &o);
	if (r)
		return r;
	if (optind + 2 != argc)
		return lp_cmd_usage_error("index verify",
					  "expected IMAGE-REF LAYER-DIGEST");
	r = reader_open(&o, argv[optind], argv[optind + 1], &rd);
	if (r < 0)
		goto out;
	layer = *lp_index_blob_digest(rd.ix);
	fd = tmp_fd();
	if (fd < 0) {
		r = lp_err_set(&err, fd, "temporary file: %s", strerror(-fd));
		goto fail;
	}
	r = lp_reg_fetch_blob(rd.reg, &rd.ref, &layer,
			      lp_index_blob_size(rd.ix), fd, &err);
	if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r == 0)
		/* the fetched index's span and grain size: an index is a
		 * pure function of the layer and those two */
		r = lp_index_build(fd, lp_index_span_size(rd.ix),
				   lp_index_grain_size(rd.ix), &layer, &mine,
				   &res, &err);
	if (r == 0)
		r = lp_index_serialise(rd.ix, &theirs);
	if (r < 0)
		goto fail;
	if (mine.len != theirs.len ||
	    memcmp(mine.data, theirs.data, mine.len)) {
		r = lp_err_set(&err, -EBADMSG,
			       "the index differs from the one the layer gives "
			       "(%zu bytes rebuilt, %zu given)",
			       mine.len, theirs.len);
		goto fail;
	}
	printf("verified=%s checkpoints=%zu files=%zu\n", argv[optind + 1],
	       lp_index_nr_checkpoints(rd.ix), lp_index_nr_files(rd.ix));
	goto out;
fail:
	lp_cmd_fail(argv[optind + 1], &err, r);
out:
	if (fd >= 0)
		close(fd);
	lp_buf_release(&mine);
	lp_buf_release(&theirs);
	reader_close(&rd);
	return r < 0 ? LP_EXIT_FAIL : 0;
}

int lp_cmd_index(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return cmd_index_verify(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "build"))
		return cmd_index_build(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "inspect"))
		return cmd_index_inspect(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "extract"))
		return cmd_index_extract(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "cat"))
		return cmd_index_cat(argc - 1, argv + 1);
	return cmd_index_image(argc, argv);
}
