# src/admin.mk: see docs/layout.md
# admin: machine key, credential store, registration, backups, shird.conf
# editing, and the admin commands of shirctl (docs/admin.md).
libshir_a_SOURCES += \
	src/atomicfile.c src/atomicfile.h \
	src/seal.c src/seal.h \
	src/machinekey.c src/machinekey.h \
	src/credstore.c src/credstore.h \
	src/registration.c src/registration.h \
	src/admin_node.c src/admin_node.h \
	src/confedit.c src/confedit.h \
	src/backup.c src/backup.h \
	src/ctl_admin.c src/ctl_admin.h \
	src/ctl_dmg.c \
	src/relaycheck.c src/relaycheck.h \
	src/ctl_register.c \
	src/servicehosts.c src/servicehosts.h \
	src/ctl_net.c

UNIT_TESTS += tests/unit/test_seal tests/unit/test_credstore
tests_unit_test_seal_SOURCES = tests/unit/test_seal.c
tests_unit_test_seal_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_seal_LDADD = $(UNIT_LIBS)
tests_unit_test_credstore_SOURCES = tests/unit/test_credstore.c
tests_unit_test_credstore_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_credstore_LDADD = $(UNIT_LIBS)

check_PROGRAMS += tests/credwriter
tests_credwriter_SOURCES = tests/integration/credwriter.c
tests_credwriter_LDADD = $(SHIR_LIBS)

INTEGRATION_TESTS += tests/integration/test_admin.py

UNIT_TESTS += tests/unit/test_confedit
tests_unit_test_confedit_SOURCES = tests/unit/test_confedit.c
tests_unit_test_confedit_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_confedit_LDADD = $(UNIT_LIBS)

FUZZ_TARGETS += tests/fuzz/fuzz_confedit
tests_fuzz_fuzz_confedit_SOURCES = tests/fuzz/fuzz_confedit.c $(FUZZ_MAIN)
tests_fuzz_fuzz_confedit_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_confedit_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

FUZZ_TARGETS += tests/fuzz/fuzz_seal
tests_fuzz_fuzz_seal_SOURCES = tests/fuzz/fuzz_seal.c $(FUZZ_MAIN)
tests_fuzz_fuzz_seal_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_seal_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
FUZZ_TARGETS += tests/fuzz/fuzz_registration
tests_fuzz_fuzz_registration_SOURCES = tests/fuzz/fuzz_registration.c $(FUZZ_MAIN)
tests_fuzz_fuzz_registration_LDADD = $(SHIR_LIBS)
tests_fuzz_fuzz_registration_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)

UNIT_TESTS += tests/unit/test_admin_node
tests_unit_test_admin_node_SOURCES = tests/unit/test_admin_node.c
tests_unit_test_admin_node_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_admin_node_LDADD = $(UNIT_LIBS)
