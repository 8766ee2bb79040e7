# src/listener.mk: the relay listener in shird (see docs/listener.md)
libshir_a_SOURCES += \
	src/backoff.c src/backoff.h \
	src/chstate.c src/chstate.h \
	src/ldial.c src/ldial.h \
	src/lctl.c src/lctl.h

UNIT_TESTS += tests/unit/test_chstate
tests_unit_test_chstate_SOURCES = tests/unit/test_chstate.c
tests_unit_test_chstate_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chstate_LDADD = $(UNIT_LIBS)
