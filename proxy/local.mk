# proxy/: .NET <defaultProxy> and environment proxy configuration, the bypass
# decision, CONNECT tunnels (libcurl multi on the event loop). See docs/proxy.md.
libshir_a_SOURCES += \
	proxy/proxy.h proxy/proxy_int.h \
	proxy/proxy_config.c proxy/proxy_dial.c \
	proxy/proxy_dotnet.c proxy/proxy_dotnet.h \
	proxy/proxy_noproxy.c proxy/proxy_noproxy.h \
	proxy/proxy_sysinfo.c proxy/proxy_sysinfo.h

UNIT_TESTS += tests/unit/test_proxy tests/unit/test_proxy_dial
tests_unit_test_proxy_dial_SOURCES = tests/unit/test_proxy_dial.c
tests_unit_test_proxy_dial_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_proxy_dial_LDADD = $(UNIT_LIBS)
tests_unit_test_proxy_SOURCES = tests/unit/test_proxy.c
tests_unit_test_proxy_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_proxy_LDADD = $(UNIT_LIBS)

FUZZ_TARGETS += tests/fuzz/fuzz_proxy_dotnet tests/fuzz/fuzz_proxy_noproxy
tests_fuzz_fuzz_proxy_dotnet_SOURCES = tests/fuzz/fuzz_proxy_dotnet.c $(FUZZ_MAIN)
tests_fuzz_fuzz_proxy_dotnet_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_proxy_dotnet_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
tests_fuzz_fuzz_proxy_noproxy_SOURCES = tests/fuzz/fuzz_proxy_noproxy.c $(FUZZ_MAIN)
tests_fuzz_fuzz_proxy_noproxy_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_proxy_noproxy_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

shirctl_SOURCES += proxy/ctl_proxy.c

# shird glue (in src/ so that proxy/ does not depend on the node)
libshir_a_SOURCES += src/proxy_node.c src/proxy_node.h

INTEGRATION_TESTS += tests/integration/test_proxy.py tests/integration/test_proxy_kerberos.py
EXTRA_DIST += tests/integration/proxy_helpers.py tests/integration/squid.py

# the test and benchmark client of proxy_dial()
check_PROGRAMS += tests/proxy_dial_client
tests_proxy_dial_client_SOURCES = tests/proxy_dial_client.c
tests_proxy_dial_client_LDADD = $(SHIR_LIBS)

# benchmarks (bench/proxy_tunnels.sh uses tests/proxy_dial_client)
noinst_PROGRAMS += bench/proxy_decide
bench_proxy_decide_SOURCES = bench/proxy_decide.c
bench_proxy_decide_LDADD = $(SHIR_LIBS)
EXTRA_DIST += bench/proxy_tunnels.sh
