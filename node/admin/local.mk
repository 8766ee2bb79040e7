# node/admin/: machine key, credential store, registration, backups, shird.conf
# editing, the service-hosts note (docs/admin.md).
libshir_a_SOURCES += \
	node/admin/seal.c node/admin/seal.h \
	node/admin/machinekey.c node/admin/machinekey.h \
	node/admin/credstore.c node/admin/credstore.h \
	node/admin/registration.c node/admin/registration.h \
	node/admin/admin_node.c node/admin/admin_node.h \
	node/admin/confedit.c node/admin/confedit.h \
	node/admin/backup.c node/admin/backup.h \
	node/admin/servicehosts.c node/admin/servicehosts.h

UNIT_TESTS += tests/unit/test_seal tests/unit/test_credstore tests/unit/test_confedit \
	tests/unit/test_admin_node
FUZZ_TARGETS += tests/fuzz/fuzz_confedit tests/fuzz/fuzz_seal tests/fuzz/fuzz_registration
tests_fuzz_fuzz_confedit_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_seal_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_registration_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_admin.py

check_PROGRAMS += tests/credwriter
tests_credwriter_SOURCES = tests/integration/credwriter.c
