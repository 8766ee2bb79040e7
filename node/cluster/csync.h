/* csync: the messages the nodes of one runtime exchange to keep the same
 * credentials (docs/ha.md). Protocol-style code: buffers in, buffers out, no
 * I/O.
 *
 * On the wire (a control message the relay hands to the runtime's other
 * listeners, or a frame between two nodes):
 *
 *   {"shirSync":{"v":1,"box":"<base64 of a seal>"}}
 *
 * The box is seal.h's format under the runtime data key (purpose 'S'), so the
 * relay sees neither names nor values; inside is one JSON object:
 *
 *   {"t":"digest","node":ID,"digest":HEX,"n":N,"name":NODE-NAME,
 *    "version":SHIRD-VERSION,"storeVersion":S,"state":"Active"|"Inactive",
 *    "addr":"HOST:PORT","fp":HEX}          (the last six optional; addr and
 *                                           fp: its remote-access port and TLS
 *                                           certificate, peerlink.h)
 *   {"t":"records","node":ID,"records":[{"n":NAME,"h":[MS,C,ORIGIN],
 *        "v":BASE64-VALUE}                 a value
 *      | {"n":NAME,"h":[...],"d":true}]}   a tombstone
 *
 * A message is at most CSYNC_MSG_MAX bytes; records are split over as many
 * messages as needed (one 64 KiB value fits in one). */
#ifndef SHIR_CSYNC_H
#define SHIR_CSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "node/admin/credstore.h"
#include "common/shir_err.h"

#define CSYNC_MSG_MAX (128 * 1024)
#define CSYNC_KEY_LEN 32
#define CSYNC_DIGEST_LEN 32	/* hex characters */
#define SEAL_PURPOSE_SYNC 'S'

enum csync_kind { CSYNC_DIGEST = 1, CSYNC_RECORDS };

struct csync_msg {
	enum csync_kind kind;
	char node[CREDSTORE_ORIGIN_MAX + 1];
	char digest[CSYNC_DIGEST_LEN + 1];	/* CSYNC_DIGEST */
	uint64_t count;				/* CSYNC_DIGEST: records behind it */
	char name[129];				/* CSYNC_DIGEST: node name, or "" */
	char version[33];			/* CSYNC_DIGEST: shird's version, or "" */
	uint64_t store_version;			/* CSYNC_DIGEST: its credentials version */
	char state[16];				/* CSYNC_DIGEST: "Active", "Inactive" or "" */
	char addr[263];				/* CSYNC_DIGEST: remote-access host:port, or "" */
	char fp[65];				/* CSYNC_DIGEST: its TLS certificate's SHA-256, or "" */
	struct credstore_rec *recs;		/* CSYNC_RECORDS */
	size_t nrecs;
};

/* The digest of a set of records (sorted by name, as credstore_records
 * gives them): the first 128 bits of SHA-256 over names and versions, hex. */
void csync_digest(const struct credstore_rec *v, size_t n, char out[CSYNC_DIGEST_LEN + 1]);

/* Sealed messages (malloc'ed text, at most CSYNC_MSG_MAX bytes). */
struct csync_digest_info {
	const char *node, *digest, *name, *version;
	uint64_t count, store_version;
	const char *state;	/* "Active" / "Inactive", or NULL */
	const char *addr, *fp;	/* remote access (peerlink.h), or NULL */
};
int csync_encode_digest(const uint8_t key[CSYNC_KEY_LEN], const struct csync_digest_info *d,
    char **out, struct shir_error *err);
/* As many records from v[*next] on as fit in one message; *next moves past
 * them. A record that can never fit (it cannot: values are at most 64 KiB)
 * is SHIR_ETOOBIG. */
int csync_encode_records(const uint8_t key[CSYNC_KEY_LEN], const char *node,
    const struct credstore_rec *v, size_t n, size_t *next, char **out, struct shir_error *err);

/* Opens and checks a message. SHIR_EPROTO for a malformed one, SHIR_ECRYPTO
 * when the box does not open under key (another runtime's node, a forgery,
 * a changed byte). Free with csync_msg_clear. */
int csync_decode(const uint8_t key[CSYNC_KEY_LEN], const char *text, size_t len,
    struct csync_msg *m, struct shir_error *err);
void csync_msg_clear(struct csync_msg *m);

/* The envelope's one unsealed field besides the box, for the relay's roster:
 *   {"shirSync":{"v":1,"state":"Inactive","box":...}}
 * (only "Inactive" is ever written; no field means Active). Returns a new
 * malloc'ed text with it, or NULL when out of memory or text is not a
 * csync envelope. */
char *csync_mark_inactive(const char *text);

#endif
