# relay/server/: shir-relay, the self-hostable relay (docs/relay.md, shir-relay(8)).
libshir_a_SOURCES += \
	relay/server/relay_conf.c relay/server/relay_conf.h \
	relay/server/relay_state.c relay/server/relay_state.h \
	relay/server/relay_srv.c relay/server/relay_srv.h relay/server/relay_srv_int.h \
	relay/server/relay_route.c relay/server/relay_listen.c relay/server/relay_tunnel.c \
	relay/server/relay_http.c relay/server/relay_admin.c \
	relay/server/relay_nodes.c relay/server/relay_nodes.h \
	relay/server/relay_roster.c relay/server/relay_roster.h \
	relay/server/relay_jobs.c relay/server/relay_jobsctl.c relay/server/relay_jobsctl.h \
	relay/server/relay_sc.c

sbin_PROGRAMS += shir-relay
shir_relay_SOURCES = relay/server/shir_relay.c

UNIT_TESTS += tests/unit/test_relay_state tests/unit/test_relay_route
FUZZ_TARGETS += tests/fuzz/fuzz_relay_front
tests_fuzz_fuzz_relay_front_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_relay.py tests/integration/test_relay_tls.py \
	tests/integration/test_relay_ctl.py tests/integration/test_relay_stress.py \
	tests/integration/test_relay_harden.py tests/integration/test_relay_limits.py \
	tests/integration/test_relay_jobs.py
EXTRA_DIST += tests/integration/relaytest.py tests/integration/hyco

# benchmarks (bench/relay_bench.py; not installed)
noinst_PROGRAMS += bench/relay_wsbench
EXTRA_DIST += bench/relay_bench.py bench/relay_attack.py bench/benchlib.py bench/selfcont_bench.py

dist_man_MANS += man/shir-relay.8
# conf/shir-relay.conf: installed by conf/local.mk
