# src/authoring.mk: see docs/layout.md
# Interactive authoring: the dispatcher, the worker pool, the readers and one
# connector per store type (docs/authoring.md).
libshir_a_SOURCES += \
	src/authoring.c src/authoring.h \
	src/workpool.c src/workpool.h \
	src/auth_ctx.c src/auth_ctx.h \
	src/auth_guard.c src/auth_guard.h \
	src/auth_rows.c src/auth_rows.h \
	src/csv_reader.c src/csv_reader.h \
	src/json_reader.c src/json_reader.h \
	src/connectors/fs.c \
	src/connectors/sqlite.c \
	src/connectors/pg.c \
	src/connectors/mysql.c \
	src/connectors/odbc.c \
	src/connectors/http.c \
	src/ctl_author.c src/ctl_author.h

INTEGRATION_TESTS += tests/integration/test_authoring.py tests/integration/test_authoring_sql.py \
	tests/integration/test_authoring_relay.py tests/integration/test_authoring_security.py
EXTRA_DIST += tests/integration/stores.py tests/integration/authnode.py

UNIT_TESTS += tests/unit/test_readers tests/unit/test_workpool tests/unit/test_authoring_api
tests_unit_test_authoring_api_SOURCES = tests/unit/test_authoring_api.c
tests_unit_test_authoring_api_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_authoring_api_LDADD = $(UNIT_LIBS)
tests_unit_test_readers_SOURCES = tests/unit/test_readers.c
tests_unit_test_readers_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_readers_LDADD = $(UNIT_LIBS)
tests_unit_test_workpool_SOURCES = tests/unit/test_workpool.c
tests_unit_test_workpool_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_workpool_LDADD = $(UNIT_LIBS)

FUZZ_TARGETS += tests/fuzz/fuzz_csv_reader tests/fuzz/fuzz_json_reader
tests_fuzz_fuzz_csv_reader_SOURCES = tests/fuzz/fuzz_csv_reader.c $(FUZZ_MAIN)
tests_fuzz_fuzz_csv_reader_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_csv_reader_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_json_reader_SOURCES = tests/fuzz/fuzz_json_reader.c $(FUZZ_MAIN)
tests_fuzz_fuzz_json_reader_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_json_reader_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

# bench/authoring_bench.py drives this load generator (see BENCHMARKS.md).
noinst_PROGRAMS += bench/authoring_load
bench_authoring_load_SOURCES = bench/authoring_load.c
bench_authoring_load_LDADD = $(SHIR_LIBS)
EXTRA_DIST += bench/authoring_bench.py

# auth_guard: the MySQL statement check and the ODBC connection string reader
UNIT_TESTS += tests/unit/test_auth_guard
tests_unit_test_auth_guard_SOURCES = tests/unit/test_auth_guard.c
tests_unit_test_auth_guard_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_auth_guard_LDADD = $(UNIT_LIBS)
FUZZ_TARGETS += tests/fuzz/fuzz_auth_guard
tests_fuzz_fuzz_auth_guard_SOURCES = tests/fuzz/fuzz_auth_guard.c $(FUZZ_MAIN)
tests_fuzz_fuzz_auth_guard_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_auth_guard_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
