/* jsonutil: reading numbers out of cJSON without undefined behaviour, and a
 * scratch arena for short-lived cJSON trees. cJSON
 * keeps every number as a double (and answers NaN for a missing item);
 * casting a NaN or an out-of-range double to an integer type is undefined,
 * so every whole-number field goes through json_whole(). */
#ifndef SHIR_JSONUTIL_H
#define SHIR_JSONUTIL_H

struct cJSON;

/* 0 and *out set when v is a number that is whole and within [min, max];
 * -1 otherwise (missing, not a number, fractional, out of range). */
int json_whole(const struct cJSON *v, long long min, long long max, long long *out);

/* Scratch arena for cJSON trees that live only inside one function (parse,
 * copy out, delete; or build, print, delete): between json_arena_begin() and
 * json_arena_end() on a thread, cJSON's nodes come from a 64 KiB per-thread
 * block and their frees cost nothing (allocation was a third of shird's
 * instructions per relayed request). What does not fit goes to malloc. A
 * string printed inside the scope must be copied out before json_arena_end
 * (json_arena_strdup). json_arena_install() sets cJSON's hooks once, at start,
 * before any thread exists; without it begin/end do nothing. */
void json_arena_install(void);
void json_arena_begin(void);
void json_arena_end(void);
/* s itself when it was malloc'ed (or NULL); a malloc'ed copy when it lives in
 * the arena (NULL if out of memory). */
char *json_arena_strdup(char *s);

#endif
