/* SPDX-License-Identifier: MIT */
/* Prints its effective uid: installed setuid root in a test's rootfs, it shows whether
 * the container's process may still gain privileges on exec (no_new_privs). */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("euid %u\n", (unsigned)geteuid());
	return 0;
}
