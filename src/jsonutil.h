/* jsonutil: reading numbers out of cJSON without undefined behaviour. cJSON
 * keeps every number as a double (and answers NaN for a missing item);
 * casting a NaN or an out-of-range double to an integer type is undefined,
 * so every whole-number field goes through json_whole(). */
#ifndef SHIR_JSONUTIL_H
#define SHIR_JSONUTIL_H

struct cJSON;

/* 0 and *out set when v is a number that is whole and within [min, max];
 * -1 otherwise (missing, not a number, fractional, out of range). */
int json_whole(const struct cJSON *v, long long min, long long max, long long *out);

#endif
