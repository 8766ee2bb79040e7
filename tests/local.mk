# tests/: unit (cmocka), integration (Python 3 standard library, real processes
# on loopback), fuzz (libFuzzer; without --enable-fuzzing the same targets run
# over their seed corpus and random mutations of it). Every test speaks TAP.
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
TEST_EXTENSIONS = .py .sh
PY_LOG_DRIVER = $(LOG_DRIVER)
SH_LOG_DRIVER = $(LOG_DRIVER)
SH_LOG_COMPILER = $(SHELL)
PY_LOG_COMPILER = $(PYTHON3)
AM_TESTS_ENVIRONMENT = \
	CMOCKA_MESSAGE_OUTPUT=TAP; export CMOCKA_MESSAGE_OUTPUT; \
	SHIR_BUILDDIR='$(abs_top_builddir)'; export SHIR_BUILDDIR; \
	SHIR_SRCDIR='$(abs_top_srcdir)'; export SHIR_SRCDIR; \
	SHIR_PAC_HELPER='$(abs_top_builddir)/proxy/shir-pac-helper'; export SHIR_PAC_HELPER; \
	PYTHONPATH='$(abs_top_srcdir)/tests/integration'; export PYTHONPATH; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1; export ASAN_OPTIONS; \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; export UBSAN_OPTIONS;

# Programs link $(LDADD) (Makefile.am) and take their source from their name
# (tests/unit/test_x.c); a folder's local.mk only lists its tests.
UNIT_TESTS =
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

# the layout's dependency rule (docs/layout.md)
TESTS += tests/layout_deps.sh
EXTRA_DIST += tests/layout_deps.sh

# --- fuzz targets ------------------------------------------------------------
# Without --enable-fuzzing the targets link tests/fuzz/standalone.c (seed corpus
# and mutations of it); with it, libFuzzer's own main.
FUZZ_TARGETS =
check_PROGRAMS += $(FUZZ_TARGETS)
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/run-libfuzzer
# Each target's one line in its folder's local.mk: tests_fuzz_X_LDFLAGS = $(FUZZ_LINKFLAGS)
# (libFuzzer's main may be linked into fuzz targets only).
if FUZZING
TESTS += tests/fuzz/run-libfuzzer
FUZZ_MAIN_LIB =
FUZZ_LINKFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
else
TESTS += $(FUZZ_TARGETS)
noinst_LIBRARIES += tests/fuzz/libfuzzmain.a
tests_fuzz_libfuzzmain_a_SOURCES = tests/fuzz/standalone.c
FUZZ_MAIN_LIB = tests/fuzz/libfuzzmain.a
FUZZ_LINKFLAGS = $(AM_LDFLAGS)
endif

# --- integration tests -------------------------------------------------------
INTEGRATION_TESTS = tests/integration/test_shird.py tests/integration/test_credentials_authoring.py \
	tests/integration/test_demo.py tests/integration/test_service_hosts.py
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/shirtest.py

# The integration tests install Microsoft's npm relay clients once into the
# build tree (tests/npm) so reruns are fast; distclean removes them.
distclean-local:
	-rm -rf tests/npm
