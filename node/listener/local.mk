# src/listener.mk: the relay listener in shird (see docs/listener.md)
libshir_a_SOURCES += \
	src/backoff.c src/backoff.h \
	src/chstate.c src/chstate.h \
	src/ldial.c src/ldial.h \
	src/lctl.c src/lctl.h \
	src/lspec.c src/lspec.h \
	src/lchan.c src/lchan.h src/lchan_int.h \
	src/lsock.c src/lreq.c \
	src/ltun.c src/ltun.h \
	src/listener.c src/listener.h

UNIT_TESTS += tests/unit/test_chstate tests/unit/test_lctl
tests_unit_test_chstate_SOURCES = tests/unit/test_chstate.c
tests_unit_test_chstate_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chstate_LDADD = $(UNIT_LIBS)
tests_unit_test_lctl_SOURCES = tests/unit/test_lctl.c
tests_unit_test_lctl_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_lctl_LDADD = $(UNIT_LIBS)

FUZZ_TARGETS += tests/fuzz/fuzz_lctl
tests_fuzz_fuzz_lctl_SOURCES = tests/fuzz/fuzz_lctl.c $(FUZZ_MAIN)
tests_fuzz_fuzz_lctl_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_lctl_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

INTEGRATION_TESTS += tests/integration/test_listener.py
EXTRA_DIST += tests/integration/listener_hyco_sender.js

# benchmark helper (not installed): bench/listener.sh uses it
noinst_PROGRAMS += bench/listener_pump
bench_listener_pump_SOURCES = bench/listener_pump.c
bench_listener_pump_LDADD = $(SHIR_LIBS)
EXTRA_DIST += bench/listener.sh bench/hyco_listener.js
