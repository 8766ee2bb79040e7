# node/copy/: copy jobs on the node (docs/copy.md): the runner that leases jobs
# from the relay (copy_node), the Parquet writer (parquet), its unit and fuzz
# tests, and pq_write, which test_parquet uses to write files hyparquet reads.
libshir_a_SOURCES += node/copy/parquet.c node/copy/parquet.h node/copy/blob_sink.c node/copy/blob_sink.h \
	node/copy/copy_node.c node/copy/copy_node.h \
	node/copy/s3_sink.c node/copy/s3_sink.h node/copy/gzip_out.c node/copy/gzip_out.h \
	node/copy/upload.c node/copy/upload.h

UNIT_TESTS += tests/unit/test_parquet tests/unit/test_blob_sink tests/unit/test_s3_sink
FUZZ_TARGETS += tests/fuzz/fuzz_parquet tests/fuzz/fuzz_s3_xml
tests_fuzz_fuzz_parquet_LDFLAGS = $(FUZZ_LINKFLAGS)
FUZZ_TARGETS += tests/fuzz/fuzz_blob_list
tests_fuzz_fuzz_blob_list_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_s3_xml_LDFLAGS = $(FUZZ_LINKFLAGS)
check_PROGRAMS += tests/pq_write
INTEGRATION_TESTS += tests/integration/test_parquet.py tests/integration/test_copy_node.py \
	tests/integration/test_copy_blob.py tests/integration/test_copy_sources.py \
	tests/integration/test_copy_s3.py tests/integration/test_copy_e2e.py
EXTRA_DIST += tests/integration/azurite.py tests/integration/s3server.py
EXTRA_DIST += tests/integration/parquet
noinst_PROGRAMS += bench/parquet_bench
EXTRA_DIST += bench/copy_bench.py bench/blob_bench.py bench/copy_sources_bench.py \
	bench/copy_rss_bench.py bench/s3_bench.py
