# node/listener/: the node's outbound Hybrid Connections channels (docs/listener.md):
# channel state and back-off, the channel and its WebSockets, requests, control
# messages, tunnels, the listener spec, the set of channels.
libshir_a_SOURCES += \
	node/listener/backoff.c node/listener/backoff.h \
	node/listener/chstate.c node/listener/chstate.h \
	node/listener/lmsg.c node/listener/lmsg.h \
	node/listener/lspec.c node/listener/lspec.h \
	node/listener/lchan.c node/listener/lchan.h node/listener/lchan_int.h \
	node/listener/lchan_ws.c node/listener/lchan_req.c \
	node/listener/ltun.c node/listener/ltun.h \
	node/listener/listener.c node/listener/listener.h

UNIT_TESTS += tests/unit/test_chstate tests/unit/test_lmsg
FUZZ_TARGETS += tests/fuzz/fuzz_lmsg
tests_fuzz_fuzz_lmsg_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_listener.py tests/integration/test_announce.py
EXTRA_DIST += tests/integration/listener_hyco_sender.js

noinst_PROGRAMS += bench/listener_pump
EXTRA_DIST += bench/listener.sh bench/hyco_listener.js
