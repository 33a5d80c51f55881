// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: common/'s base64 decoder in both modes (lp_base64_decode)
 * and the encoder. The first byte picks the mode and an output size;
 * the rest is the text. Aborts when a decoder writes past the size it was
 * given, reports more bytes than the text can hold, or when what decodes
 * does not survive encode-decode unchanged; and when strict decoding
 * succeeds where lenient decoding (a superset) fails or disagrees.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_base64.h"

#define FUZZ_OUT_MAX 4096
#define CANARY 0xa5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[FUZZ_OUT_MAX + 1], lenient[FUZZ_OUT_MAX],
		again[FUZZ_OUT_MAX];
	static char enc[FUZZ_OUT_MAX / 3 * 4 + 8];
	const char *s = (const char *)data + 1;
	size_t len, room, n = 0, nl = 0, n2 = 0;
	int r, rl;

	if (size < 1)
		return 0;
	len = size - 1;
	room = data[0] & 0x80 ? FUZZ_OUT_MAX : (data[0] & 0x7f) * 4;
	memset(out, CANARY, sizeof(out));
	r = lp_base64_decode(s, len, LP_BASE64_STRICT, out, room, &n);
	if (out[room] != CANARY)
		abort();
	if (r == 0 && (n > room || n > len / 4 * 3))
		abort();
	if (r < 0 && r != -EINVAL && r != -EFBIG)
		abort();
	rl = lp_base64_decode(s, len, LP_BASE64_LENIENT, lenient, FUZZ_OUT_MAX,
			      &nl);
	if (rl < 0 && rl != -EINVAL && rl != -EFBIG)
		abort();
	if (rl == 0 && nl > len / 4 * 3 + 2)
		abort();
	/* strict input is lenient input, with the same bytes */
	if (r == 0 && (rl < 0 || nl != n || memcmp(out, lenient, n)))
		abort();
	if (r == 0) {
		if (lp_base64_encode(out, n, enc, sizeof(enc)) < 0 ||
		    strlen(enc) != lp_base64_len(n))
			abort();
		if (lp_base64_decode(enc, strlen(enc), LP_BASE64_STRICT, again,
				     sizeof(again), &n2) < 0 ||
		    n2 != n || memcmp(again, out, n))
			abort();
	}
	return 0;
}
