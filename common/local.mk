# common/: below everything (docs/layout.md): errors, the log, JSON helpers,
# large socket reads, atomic files. Includes nothing of the project above it.
libshir_a_SOURCES += \
	common/shir_err.c common/shir_err.h \
	common/log.c common/log.h \
	common/jsonutil.c common/jsonutil.h \
	common/evread.c common/evread.h \
	common/atomicfile.c common/atomicfile.h \
	common/random.c common/random.h \
	common/sdnotify.c common/sdnotify.h

UNIT_TESTS += tests/unit/test_log tests/unit/test_jsonutil tests/unit/test_evread tests/unit/test_random
