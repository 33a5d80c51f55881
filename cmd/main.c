// SPDX-License-Identifier: Apache-2.0
/*
 * lazypull: entry point and subcommand dispatch. (Being written.)
 */
#include <stdio.h>

int main(int argc, char **argv)
{
	fprintf(stderr, "lazypull: not yet\n");
	return 2;
}
