# node/authoring/: interactive authoring (docs/authoring.md): the dispatcher, the
# request context and policy, rows, the CSV/JSON readers, one file per connector.
libshir_a_SOURCES += \
	node/authoring/authoring.c node/authoring/authoring.h \
	node/authoring/auth_ctx.c node/authoring/auth_ctx.h \
	node/authoring/auth_guard.c node/authoring/auth_guard.h \
	node/authoring/auth_rows.c node/authoring/auth_rows.h \
	node/authoring/csv_reader.c node/authoring/csv_reader.h \
	node/authoring/json_reader.c node/authoring/json_reader.h \
	node/authoring/connectors/fs.c \
	node/authoring/connectors/sqlite.c \
	node/authoring/connectors/pg.c \
	node/authoring/connectors/mysql.c \
	node/authoring/connectors/odbc.c \
	node/authoring/connectors/http.c \
	node/authoring/connectors/text_stream.c

UNIT_TESTS += tests/unit/test_readers tests/unit/test_authoring_api tests/unit/test_auth_guard
FUZZ_TARGETS += tests/fuzz/fuzz_csv_reader tests/fuzz/fuzz_json_reader tests/fuzz/fuzz_auth_guard \
	tests/fuzz/fuzz_json_stream
tests_fuzz_fuzz_json_stream_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_csv_reader_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_json_reader_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_auth_guard_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_authoring.py tests/integration/test_authoring_sql.py \
	tests/integration/test_authoring_relay.py tests/integration/test_security_limits.py \
	tests/integration/test_authoring_security.py
EXTRA_DIST += tests/integration/stores.py tests/integration/authnode.py

noinst_PROGRAMS += bench/authoring_load
EXTRA_DIST += bench/authoring_bench.py
