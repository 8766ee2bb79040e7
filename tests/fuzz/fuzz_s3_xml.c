/* Fuzz target: the S3 sink's reader of XML answers (s3_xml_text: the text of
 * a tag, entities decoded, bounded by the output buffer) on any bytes, for the
 * tags the sink reads. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/copy/s3_sink.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *tags[] = { "Code", "Message", "UploadId", "ETag" };
	char out[96];
	size_t i;

	for (i = 0; i < sizeof tags / sizeof tags[0]; i++)
		if (s3_xml_text((const char *)data, size, tags[i], out, sizeof out) == 0 &&
		    strlen(out) >= sizeof out)
			abort();
	return 0;
}
