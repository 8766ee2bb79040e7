# relay/: Hybrid Connections, both sides (see docs/layout.md, docs/relay.md)
libshir_a_SOURCES += \
	relay/http1.c relay/http1.h \
	relay/ws.c relay/ws.h \
	relay/sas.c relay/sas.h \
	relay/hc_msg.c relay/hc_msg.h \
	relay/irkey.c relay/irkey.h \
	relay/relay_conf.c relay/relay_conf.h \
	relay/relay_state.c relay/relay_state.h \
	relay/relay_srv.c relay/relay_srv.h

sbin_PROGRAMS += shir-relay
shir_relay_SOURCES = relay/shir_relay.c
shir_relay_LDADD = $(SHIR_LIBS)

# --- unit tests --------------------------------------------------------------
UNIT_TESTS += tests/unit/test_ws tests/unit/test_sas tests/unit/test_hc_msg tests/unit/test_irkey \
	tests/unit/test_relay_state
tests_unit_test_relay_state_SOURCES = tests/unit/test_relay_state.c
tests_unit_test_relay_state_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_relay_state_LDADD = $(UNIT_LIBS)
tests_unit_test_ws_SOURCES = tests/unit/test_ws.c
tests_unit_test_ws_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ws_LDADD = $(UNIT_LIBS)
tests_unit_test_sas_SOURCES = tests/unit/test_sas.c
tests_unit_test_sas_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sas_LDADD = $(UNIT_LIBS)
tests_unit_test_hc_msg_SOURCES = tests/unit/test_hc_msg.c
tests_unit_test_hc_msg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hc_msg_LDADD = $(UNIT_LIBS)
tests_unit_test_irkey_SOURCES = tests/unit/test_irkey.c
tests_unit_test_irkey_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_irkey_LDADD = $(UNIT_LIBS)

# --- fuzz targets ------------------------------------------------------------
FUZZ_TARGETS += tests/fuzz/fuzz_ws_frames tests/fuzz/fuzz_http1 tests/fuzz/fuzz_hc_msg \
	tests/fuzz/fuzz_irkey tests/fuzz/fuzz_sas tests/fuzz/fuzz_relay_front
tests_fuzz_fuzz_relay_front_SOURCES = tests/fuzz/fuzz_relay_front.c $(FUZZ_MAIN)
tests_fuzz_fuzz_relay_front_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_relay_front_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_ws_frames_SOURCES = tests/fuzz/fuzz_ws_frames.c $(FUZZ_MAIN)
tests_fuzz_fuzz_ws_frames_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_ws_frames_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_http1_SOURCES = tests/fuzz/fuzz_http1.c $(FUZZ_MAIN)
tests_fuzz_fuzz_http1_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_http1_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_hc_msg_SOURCES = tests/fuzz/fuzz_hc_msg.c $(FUZZ_MAIN)
tests_fuzz_fuzz_hc_msg_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_hc_msg_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_irkey_SOURCES = tests/fuzz/fuzz_irkey.c $(FUZZ_MAIN)
tests_fuzz_fuzz_irkey_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_irkey_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_sas_SOURCES = tests/fuzz/fuzz_sas.c $(FUZZ_MAIN)
tests_fuzz_fuzz_sas_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_sas_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

# --- integration tests -------------------------------------------------------
INTEGRATION_TESTS += tests/integration/test_relay.py tests/integration/test_relay_tls.py \
	tests/integration/test_relay_ctl.py tests/integration/test_relay_stress.py \
	tests/integration/test_relay_harden.py tests/integration/test_relay_limits.py
EXTRA_DIST += tests/integration/relaytest.py tests/integration/hyco

# --- benchmarks (bench/relay_bench.py; not installed) -------------------------
noinst_PROGRAMS += bench/relay_wsbench
bench_relay_wsbench_SOURCES = bench/relay_wsbench.c
bench_relay_wsbench_LDADD = $(SHIR_LIBS)
EXTRA_DIST += bench/relay_bench.py bench/relay_attack.py

# --- docs and sample configuration -------------------------------------------
dist_man_MANS += man/shir-relay.8
EXTRA_DIST += conf/shir-relay.conf
