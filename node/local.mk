# node/: shird's core (docs/layout.md): main and hooks, node state, the node API
# and its control socket, shird.conf, the worker pool, the proxy glue.
libshir_a_SOURCES += \
	node/conf.c node/conf.h \
	node/api.c node/api.h \
	node/api_stream.c node/api_stream.h \
	node/node.c node/node.h \
	node/ctlsock.c node/ctlsock.h \
	node/workpool.c node/workpool.h \
	node/proxy_node.c node/proxy_node.h

sbin_PROGRAMS += shird
shird_SOURCES = node/shird.c node/shird.h node/shird_hooks.c

UNIT_TESTS += tests/unit/test_conf tests/unit/test_api tests/unit/test_workpool \
	tests/unit/test_api_stream
FUZZ_TARGETS += tests/fuzz/fuzz_conf
tests_fuzz_fuzz_conf_LDFLAGS = $(FUZZ_LINKFLAGS)
