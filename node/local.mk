# src/: shird and shirctl, and the node-side parts of libshir.a
libshir_a_SOURCES += \
	src/shir_err.c src/shir_err.h \
	src/log.c src/log.h \
	src/conf.c src/conf.h \
	src/api.c src/api.h \
	src/node.c src/node.h \
	src/ctlsock.c src/ctlsock.h \
	src/ctl_client.c src/ctl_client.h \
	src/jsonutil.c src/jsonutil.h \
	src/evread.c src/evread.h

sbin_PROGRAMS += shird
shird_SOURCES = src/shird.c src/shird.h src/shird_hooks.c
shird_LDADD = $(SHIR_LIBS)

bin_PROGRAMS += shirctl
shirctl_SOURCES = src/shirctl.c src/shirctl.h
shirctl_LDADD = $(SHIR_LIBS)
