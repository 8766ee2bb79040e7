# node/selfcont/: the self-contained interactive authoring channel
# (docs/self-contained.md): one connection (scconn: dial, upgrade, HTTP/2
# server, streams) and the set of them with the runtime's mode (selfcont).
libshir_a_SOURCES += \
	node/selfcont/scconn.c node/selfcont/scconn.h \
	node/selfcont/selfcont.c node/selfcont/selfcont.h

UNIT_TESTS += tests/unit/test_sc_proto
FUZZ_TARGETS += tests/fuzz/fuzz_sc_proto tests/fuzz/fuzz_scconn
tests_fuzz_fuzz_sc_proto_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_scconn_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_selfcont.py
