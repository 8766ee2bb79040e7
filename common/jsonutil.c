#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/jsonutil.h"

int
json_whole(const cJSON *v, long long min, long long max, long long *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	/* the range check comes before any cast: it also refuses NaN and inf */
	if (!(d >= (double)min && d <= (double)max) || d != floor(d))
		return -1;
	*out = (long long)d;
	return 0;
}

/* ---- scratch arena for cJSON ------------------------------------------------ */

#define JSON_ARENA_SIZE (64 * 1024)

/* Under AddressSanitizer the arena is poisoned outside live allocations, so a
 * pointer kept past json_arena_end is still reported as a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static bool arena_installed;	/* set once in main, before threads */
static __thread struct {
	unsigned char *base;
	size_t used;
	int depth;
} arena;

static bool
in_arena(const void *p)
{
	return arena.base != NULL && (const unsigned char *)p >= arena.base &&
	    (const unsigned char *)p < arena.base + JSON_ARENA_SIZE;
}

static void *
arena_malloc(size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;

	if (arena.depth > 0 && arena.base != NULL && need >= n &&
	    need <= JSON_ARENA_SIZE - arena.used) {
		void *p = arena.base + arena.used;

		arena.used += need;
		ARENA_UNPOISON(p, n);
		return p;
	}
	return malloc(n);
}

static void
arena_free(void *p)
{
	if (!in_arena(p))
		free(p);
}

void
json_arena_install(void)
{
	cJSON_Hooks h = { arena_malloc, arena_free };

	cJSON_InitHooks(&h);
	arena_installed = true;
}

void
json_arena_begin(void)
{
	if (!arena_installed)
		return;
	if (arena.base == NULL) {
		arena.base = malloc(JSON_ARENA_SIZE);	/* kept for the thread's life */
		if (arena.base != NULL)
			ARENA_POISON(arena.base, JSON_ARENA_SIZE);
	}
	arena.depth++;
}

void
json_arena_end(void)
{
	if (!arena_installed || arena.depth == 0)
		return;
	if (--arena.depth == 0 && arena.base != NULL) {
		ARENA_POISON(arena.base, JSON_ARENA_SIZE);
		arena.used = 0;
	}
}

char *
json_arena_strdup(char *s)
{
	char *r;

	if (s == NULL || !in_arena(s))
		return s;	/* already malloc'ed (or NULL) */
	r = strdup(s);
	return r;	/* the arena copy goes with json_arena_end */
}
