# src/authoring.mk: see docs/layout.md
# Interactive authoring: the dispatcher, the worker pool, the readers and one
# connector per store type (docs/authoring.md).
libshir_a_SOURCES += \
	src/authoring.c src/authoring.h \
	src/workpool.c src/workpool.h \
	src/auth_ctx.c src/auth_ctx.h \
	src/auth_rows.c src/auth_rows.h \
	src/csv_reader.c src/csv_reader.h \
	src/json_reader.c src/json_reader.h \
	src/connectors/fs.c \
	src/connectors/sqlite.c \
	src/connectors/pg.c \
	src/connectors/mysql.c \
	src/connectors/odbc.c \
	src/connectors/http.c \
	src/ctl_author.c src/ctl_author.h
