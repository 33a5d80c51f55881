// SPDX-License-Identifier: Apache-2.0
/*
 * Replay driver for the fuzz targets when they are not built with libFuzzer:
 * runs LLVMFuzzerTestOneInput over every file named on the command line, or
 * every file in a named directory (a corpus). A crash or sanitizer report
 * fails the run; so does a corpus that is missing or empty.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	int r = -1;

	f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *p;

			cap = cap ? cap * 2 : 65536;
			p = realloc(data, cap);
			if (!p)
				goto out;
			data = p;
		}
		n = fread(data + len, 1, cap - len, f);
		if (!n)
			break;
		len += n;
	}
	if (ferror(f))
		goto out;
	LLVMFuzzerTestOneInput(data, len);
	r = 0;
out:
	free(data);
	fclose(f);
	return r;
}

int main(int argc, char **argv)
{
	int i, ran = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		struct dirent *de;
		DIR *d;

		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			ran++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
				 de->d_name);
			if (run_file(path) < 0) {
				closedir(d);
				return 1;
			}
			ran++;
		}
		closedir(d);
	}
	if (!ran) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("replay: %d inputs ran\n", ran);
	return 0;
}
