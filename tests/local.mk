# tests/: unit (cmocka), integration (Python 3 standard library, real processes
# on loopback), fuzz (libFuzzer; without --enable-fuzzing the same targets run
# over their seed corpus and random mutations of it). Every test speaks TAP.
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
TEST_EXTENSIONS = .py
PY_LOG_DRIVER = $(LOG_DRIVER)
PY_LOG_COMPILER = $(PYTHON3)
AM_TESTS_ENVIRONMENT = \
	CMOCKA_MESSAGE_OUTPUT=TAP; export CMOCKA_MESSAGE_OUTPUT; \
	SHIR_BUILDDIR='$(abs_top_builddir)'; export SHIR_BUILDDIR; \
	SHIR_SRCDIR='$(abs_top_srcdir)'; export SHIR_SRCDIR; \
	PYTHONPATH='$(abs_top_srcdir)/tests/integration'; export PYTHONPATH; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1; export ASAN_OPTIONS; \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; export UBSAN_OPTIONS;

UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
UNIT_LIBS = $(SHIR_LIBS) $(CMOCKA_LIBS)

# --- unit tests --------------------------------------------------------------
UNIT_TESTS = tests/unit/test_conf tests/unit/test_log tests/unit/test_api tests/unit/test_jsonutil \
	tests/unit/test_evread
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c
tests_unit_test_conf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conf_LDADD = $(UNIT_LIBS)
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LIBS)
tests_unit_test_api_SOURCES = tests/unit/test_api.c
tests_unit_test_api_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_api_LDADD = $(UNIT_LIBS)
tests_unit_test_jsonutil_SOURCES = tests/unit/test_jsonutil.c
tests_unit_test_jsonutil_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_jsonutil_LDADD = $(UNIT_LIBS)
tests_unit_test_evread_SOURCES = tests/unit/test_evread.c
tests_unit_test_evread_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_evread_LDADD = $(UNIT_LIBS)

# --- fuzz targets ------------------------------------------------------------
FUZZ_TARGETS = tests/fuzz/fuzz_conf
check_PROGRAMS += $(FUZZ_TARGETS)
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/run-libfuzzer
if FUZZING
FUZZ_MAIN =
FUZZ_LINK = $(FUZZ_CFLAGS)
TESTS += tests/fuzz/run-libfuzzer
else
FUZZ_MAIN = tests/fuzz/standalone.c
FUZZ_LINK =
TESTS += $(FUZZ_TARGETS)
endif
tests_fuzz_fuzz_conf_SOURCES = tests/fuzz/fuzz_conf.c $(FUZZ_MAIN)
tests_fuzz_fuzz_conf_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_conf_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
EXTRA_DIST += tests/fuzz/standalone.c

# --- integration tests -------------------------------------------------------
INTEGRATION_TESTS = tests/integration/test_shird.py tests/integration/test_credentials_authoring.py \
	tests/integration/test_demo.py tests/integration/test_service_hosts.py
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/shirtest.py

# The integration tests install Microsoft's npm relay clients once into the
# build tree (tests/npm) so reruns are fast; distclean removes them.
distclean-local:
	-rm -rf tests/npm
