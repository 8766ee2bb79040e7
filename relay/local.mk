# relay/: Hybrid Connections, what both sides use (docs/relay.md, docs/listener.md):
# HTTP/1 heads, WebSocket, SAS, control messages, runtime keys, and the dialer
# (proxy + TLS + SPKI pin) the node's channels use.
libshir_a_SOURCES += \
	relay/http1.c relay/http1.h \
	relay/ws.c relay/ws.h relay/ws_frame.h \
	relay/ws_handshake.c relay/ws_handshake.h \
	relay/sas.c relay/sas.h \
	relay/hc_msg.c relay/hc_msg.h \
	relay/irkey.c relay/irkey.h \
	relay/hcdial.c relay/hcdial.h \
	relay/announce.c relay/announce.h \
	relay/sc_proto.c relay/sc_proto.h

UNIT_TESTS += tests/unit/test_ws tests/unit/test_sas tests/unit/test_hc_msg tests/unit/test_irkey
FUZZ_TARGETS += tests/fuzz/fuzz_ws_frames tests/fuzz/fuzz_http1 tests/fuzz/fuzz_hc_msg \
	tests/fuzz/fuzz_irkey tests/fuzz/fuzz_sas tests/fuzz/fuzz_announce
tests_fuzz_fuzz_ws_frames_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_http1_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_hc_msg_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_irkey_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_sas_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_announce_LDFLAGS = $(FUZZ_LINKFLAGS)
