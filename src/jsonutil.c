#include "config.h"

#include <math.h>

#include <cjson/cJSON.h>

#include "jsonutil.h"

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
