// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_fdh_msg_check(), the parser of the fd holder's wire
 * (snapshot/fdholder.c): the input is one received message. Accepted
 * messages of this protocol must have a NUL-terminated key within its
 * field and a state length within its array; a message of another version
 * is accepted only as its fixed head (magic and version).
 */
#include <stdlib.h>
#include <string.h>

#include "../../snapshot/snap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = lp_fdh_msg_size();
	uint32_t version = 0, state_len;
	uint8_t *m;

	if (size > cap)
		return 0; /* a datagram that large is truncated: refused */
	m = calloc(1, cap);
	if (!m)
		return 0;
	memcpy(m, data, size);
	if (lp_fdh_msg_check(m, size, &version) == 0) {
		if (size < 8 || memcmp(m, "LPFH", 4))
			abort();
		if (version == LP_SNAP_FDH_PROTO) {
			/* key at 20 (after magic, version, type, status,
			 * arg), then the state length and the state */
			if (size != cap ||
			    !memchr(m + 20, '\0', LP_FDH_KEY_MAX))
				abort();
			memcpy(&state_len, m + 20 + LP_FDH_KEY_MAX, 4);
			if (state_len > LP_FUSE_STATE_MAX)
				abort();
		}
	}
	free(m);
	return 0;
}
