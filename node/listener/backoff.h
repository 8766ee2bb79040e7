/* backoff: the reconnect ladder of a relay channel (pure; no clock, no I/O).
 *
 * Delays go 0, 1, 2, 5, 10, 30, 30, ... seconds, each with up to 20% of
 * jitter added (0..250 ms on the first rung) so that many nodes that lost the
 * same relay do not come back in one burst. A channel that stayed connected
 * for at least the stable period starts again at the bottom of the ladder
 * when it drops; one that flaps keeps climbing. */
#ifndef SHIR_BACKOFF_H
#define SHIR_BACKOFF_H

#include <stdint.h>

#define BACKOFF_STABLE_MS_DEFAULT (60 * 1000)

struct backoff {
	unsigned step;		/* next rung of the ladder */
	int64_t up_since_ms;	/* when the channel came up; -1 while down */
	int64_t stable_ms;	/* connected this long = the ladder resets */
};

void backoff_init(struct backoff *b, int64_t stable_ms);
/* The channel came up at now_ms. */
void backoff_up(struct backoff *b, int64_t now_ms);
/* The channel went down (or an attempt failed) at now_ms: resets the ladder
 * if it had been up for the stable period. */
void backoff_down(struct backoff *b, int64_t now_ms);
/* The delay before the next attempt, in ms; climbs one rung. rnd is any
 * random 32-bit value (the caller's source, so tests are deterministic). */
int64_t backoff_next_ms(struct backoff *b, uint32_t rnd);
/* The delay of rung i without jitter, in seconds (for docs and tests). */
int backoff_rung_s(unsigned i);

#endif
