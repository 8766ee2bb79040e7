# node/cluster/: the nodes of one runtime keep the same credentials (docs/ha.md):
# the runtime data key (rtkey), the sealed sync messages (csync), the daemon
# part on the event loop (cluster).
libshir_a_SOURCES += \
	node/cluster/rtkey.c node/cluster/rtkey.h \
	node/cluster/rtgrant.c node/cluster/rtgrant.h \
	node/cluster/rtca.c node/cluster/rtca.h \
	node/cluster/csync.c node/cluster/csync.h \
	node/cluster/peerframe.c node/cluster/peerframe.h \
	node/cluster/peerlink.c node/cluster/peerlink.h \
	node/cluster/cluster.c node/cluster/cluster.h

UNIT_TESTS += tests/unit/test_csync tests/unit/test_rtca tests/unit/test_peerframe
FUZZ_TARGETS += tests/fuzz/fuzz_csync
tests_fuzz_fuzz_csync_LDFLAGS = $(FUZZ_LINKFLAGS)
# the key request and grant files of shirctl cluster request/grant/join
FUZZ_TARGETS += tests/fuzz/fuzz_rtgrant
tests_fuzz_fuzz_rtgrant_LDFLAGS = $(FUZZ_LINKFLAGS)
# issues a runtime-CA certificate from a node's state (test_ha_direct.py)
check_PROGRAMS += tests/rtcert
tests_rtcert_SOURCES = tests/integration/rtcert.c
# the frames a peer sends on the node-to-node link
FUZZ_TARGETS += tests/fuzz/fuzz_peerframe
tests_fuzz_fuzz_peerframe_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_ha.py tests/integration/test_ha_direct.py
