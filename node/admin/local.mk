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
	node/admin/servicehosts.c node/admin/servicehosts.h \
	node/admin/statuspage.c node/admin/statuspage.h

# The status page's HTML, script and style, compiled in as C strings.
SP_ASSETS = node/admin/statuspage.html node/admin/statuspage.js node/admin/statuspage.css
nodist_libshir_a_SOURCES = node/admin/statuspage_assets.c
BUILT_SOURCES = node/admin/statuspage_assets.c
CLEANFILES += node/admin/statuspage_assets.c
EXTRA_DIST += $(SP_ASSETS)
node/admin/statuspage_assets.c: $(SP_ASSETS) Makefile
	$(AM_V_GEN)$(MKDIR_P) node/admin && { \
	  echo '/* generated from node/admin/statuspage.{html,js,css}: do not edit */'; \
	  for f in html js css; do \
	    echo "const char statuspage_$$f[] = {"; \
	    od -An -v -tx1 $(srcdir)/node/admin/statuspage.$$f | sed 's/[0-9a-f][0-9a-f]/0x&,/g'; \
	    echo '0x00 };'; \
	  done; } >$@.tmp && mv $@.tmp $@

UNIT_TESTS += tests/unit/test_seal tests/unit/test_credstore tests/unit/test_confedit \
	tests/unit/test_admin_node
FUZZ_TARGETS += tests/fuzz/fuzz_confedit tests/fuzz/fuzz_seal tests/fuzz/fuzz_registration \
	tests/fuzz/fuzz_statuspage_addr
tests_fuzz_fuzz_statuspage_addr_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_confedit_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_seal_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_registration_LDFLAGS = $(FUZZ_LINKFLAGS)
INTEGRATION_TESTS += tests/integration/test_admin.py tests/integration/test_statuspage.py

check_PROGRAMS += tests/credwriter
tests_credwriter_SOURCES = tests/integration/credwriter.c
