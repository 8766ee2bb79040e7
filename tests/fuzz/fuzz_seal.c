/* Fuzz target: opening sealed files (credentials with a fixed key, backups
 * with a fixed password). Anything but a file sealed with that key must be
 * refused; nothing may crash or read out of bounds. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "node/admin/seal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[SEAL_KEY_LEN] = { 7 };
	struct shir_error err;
	char *plain = NULL;
	size_t n = 0;

	if (seal_open_key(key, SEAL_PURPOSE_CREDENTIALS, data, size, &plain, &n, &err) == 0)
		seal_plain_free(plain, n);
	/* the password path runs scrypt only for a well-formed header with a
	 * small cost: keep inputs that would ask for more out */
	if (size > 12 && data[12] <= 12 &&
	    seal_open_password("pw", SEAL_PURPOSE_BACKUP, data, size, &plain, &n, &err) == 0)
		seal_plain_free(plain, n);
	return 0;
}
