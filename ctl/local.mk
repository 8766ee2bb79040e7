# ctl/: shirctl and its command families (docs/admin.md, shirctl(8)). The
# command code sits in libshir.a so unit tests can reach it.
libshir_a_SOURCES += \
	ctl/ctl_client.c ctl/ctl_client.h \
	ctl/ctl_admin.c ctl/ctl_admin.h \
	ctl/ctl_dmg.c \
	ctl/ctl_net.c \
	ctl/ctl_register.c \
	ctl/relaycheck.c ctl/relaycheck.h \
	ctl/ctl_author.c ctl/ctl_author.h \
	ctl/ctl_node.c \
	ctl/ctl_cluster.c \
	ctl/ctl_racheck.c \
	ctl/ctl_jobs.c

bin_PROGRAMS += shirctl
shirctl_SOURCES = ctl/shirctl.c ctl/shirctl.h ctl/ctl_proxy.c
