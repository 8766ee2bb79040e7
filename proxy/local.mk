# proxy/: .NET <defaultProxy> and environment proxy configuration, the bypass
# decision, CONNECT tunnels (libcurl multi on the event loop). See docs/proxy.md.
libshir_a_SOURCES += \
	proxy/proxy.h proxy/proxy_int.h proxy/curl_ev.c proxy/curl_ev.h \
	proxy/proxy_config.c proxy/proxy_dial.c \
	proxy/proxy_dotnet.c proxy/proxy_dotnet.h \
	proxy/proxy_noproxy.c proxy/proxy_noproxy.h \
	proxy/proxy_sysinfo.c proxy/proxy_sysinfo.h \
	proxy/pac.c proxy/pac.h proxy/pac_fetch.c proxy/pac_fetch.h \
	proxy/pac_result.c proxy/pac_result.h

# the PAC evaluator: a small program of its own (Duktape), started by shird
pkglibexec_PROGRAMS = proxy/shir-pac-helper
proxy_shir_pac_helper_SOURCES = proxy/shir-pac-helper.c proxy/pac_js.h
proxy_shir_pac_helper_LDADD = $(DUKTAPE_LIBS) -lm

UNIT_TESTS += tests/unit/test_proxy tests/unit/test_proxy_dial tests/unit/test_pac_result tests/unit/test_pac
FUZZ_TARGETS += tests/fuzz/fuzz_proxy_dotnet tests/fuzz/fuzz_proxy_noproxy \
	tests/fuzz/fuzz_pac_result tests/fuzz/fuzz_pac_decode
tests_fuzz_fuzz_proxy_dotnet_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_proxy_noproxy_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_pac_result_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_pac_decode_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_proxy.py tests/integration/test_proxy_kerberos.py \
	tests/integration/test_pac.py
EXTRA_DIST += tests/integration/proxy_helpers.py tests/integration/squid.py

# the test and benchmark client of proxy_dial()
check_PROGRAMS += tests/proxy_dial_client

# benchmarks (bench/proxy_tunnels.sh uses tests/proxy_dial_client)
noinst_PROGRAMS += bench/proxy_decide bench/pac_decide
EXTRA_DIST += bench/proxy_tunnels.sh
