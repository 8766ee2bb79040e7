/* machinekey: the node's data-protection key (our DPAPI), 32 random bytes in
 * state_dir/machine.key, mode 0600. Created at first start; a key file that
 * group or others can read (or that is not 32 bytes) is refused. */
#ifndef SHIR_MACHINEKEY_H
#define SHIR_MACHINEKEY_H

#include <stdint.h>

#include "common/shir_err.h"

#define MACHINEKEY_LEN 32
#define MACHINEKEY_FILE "machine.key"

/* Loads state_dir/machine.key; when it is missing and create is non-zero,
 * creates the directory (0700) and a new key. */
int machinekey_load(const char *state_dir, int create, uint8_t key[MACHINEKEY_LEN],
    struct shir_error *err);

#endif
