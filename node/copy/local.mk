# node/copy/: copy jobs on the node (docs/copy.md). So far: the Parquet writer
# (parquet), its unit and fuzz tests, and pq_write, which the integration test
# uses to write files that npm hyparquet reads back.
libshir_a_SOURCES += node/copy/parquet.c node/copy/parquet.h

UNIT_TESTS += tests/unit/test_parquet
FUZZ_TARGETS += tests/fuzz/fuzz_parquet
tests_fuzz_fuzz_parquet_LDFLAGS = $(FUZZ_LINKFLAGS)
check_PROGRAMS += tests/pq_write
INTEGRATION_TESTS += tests/integration/test_parquet.py
EXTRA_DIST += tests/integration/parquet
noinst_PROGRAMS += bench/parquet_bench
